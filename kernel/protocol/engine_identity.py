"""Who an ipytui kernel is when it serves as an ipyparallel engine.

The engine front process (``ipytui.kernel.engine``) hands the engine's uuid
to the kernel it starts through the environment ($IPYTUI_ENGINE), so that the
supervisor and every worker (a restored one too) sign their replies the way
ipyparallel's schedulers and client read them: ``metadata.engine`` (the uuid),
``metadata.status``, and ``engine_info`` (with the engine id) in an error's
content. The front starts the kernel while it registers, so the id the
controller gives comes later, in ``id_file``: it is written (atomically) before
the first task can reach the kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

ENGINE_ENV = "IPYTUI_ENGINE"

#: requests the worker runs on its main thread, one after the other (user code)
MAIN_THREAD_REQUESTS = frozenset({"execute_request", "apply_request"})


@dataclass(frozen=True)
class EngineIdentity:
    """The engine id the controller gave (-1 until known), and the uuid it knows the engine by."""

    id: int
    uuid: str
    #: under mpiexec: the file the worker that initialized MPI leaves (a worker started
    #: after it cannot join the MPI job again); "" when the engine is no MPI rank
    mpi_marker: str = ""
    #: where the front writes ``{"id": N}`` once the controller has given the id
    id_file: str = ""

    def to_env(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "uuid": self.uuid,
                "mpi_marker": self.mpi_marker,
                "id_file": self.id_file,
            }
        )

    def resolved(self) -> EngineIdentity:
        """This identity with the id from ``id_file`` when it was not known yet."""
        if self.id >= 0 or not self.id_file:
            return self
        try:
            with open(self.id_file) as f:
                engine_id = int(json.load(f)["id"])
        except (OSError, ValueError, KeyError, TypeError):
            return self
        return replace(self, id=engine_id)

    def info(self, method: str | None = None) -> dict[str, Any]:
        """``engine_info`` as ipyparallel puts it in an error (RemoteError reads it)."""
        info: dict[str, Any] = {"engine_uuid": self.uuid, "engine_id": self.id}
        if method:
            info["method"] = method
        return info

    def reply_metadata(self, status: str, started: str | None = None) -> dict[str, Any]:
        """Reply metadata: the task scheduler reads ``status`` and ``dependencies_met``,
        the client ``engine`` (to name the engine) and ``started``."""
        metadata: dict[str, Any] = {"engine": self.uuid, "status": status, "dependencies_met": True}
        if started:
            metadata["started"] = started
        return metadata

    def topic(self, msg_type: bytes) -> bytes:
        """IOPub topic ``engine.<id>.<type>``: a client can follow one engine by prefix."""
        return b"engine.%d.%s" % (self.id, msg_type)


def from_env(environ: Mapping[str, str] | None = None) -> EngineIdentity | None:
    """The identity the front process set, or None in a plain kernel (or a garbled value)."""
    text = (os.environ if environ is None else environ).get(ENGINE_ENV)
    if not text:
        return None
    try:
        data = json.loads(text)
        identity = EngineIdentity(
            int(data["id"]),
            str(data["uuid"]),
            mpi_marker=str(data.get("mpi_marker") or ""),
            id_file=str(data.get("id_file") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return identity.resolved()


def write_id_file(path: str, engine_id: int) -> None:
    """The controller's engine id for the kernel (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"id": engine_id}, f)
    os.replace(tmp, path)
