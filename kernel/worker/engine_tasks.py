"""The worker as an ipyparallel engine: ``apply_request``, ``abort_request``,
``clear_request``, and the engine's marks on every reply.

Only a worker whose kernel was started by the engine front process
(``ipytui.kernel.engine``, which sets $IPYTUI_ENGINE) installs this.
Functions and arguments travel in ipyparallel's own serialization
(``ipyparallel.serialize``), so ``apply``, ``map``, ``push``/``pull``,
``scatter``/``gather`` and ``@interactive`` behave as on ``ipengine``.

A task that rebinds names in the namespace (``push``, a ``global``
assignment, ``scatter``) gets a restore point before its reply, as a
state-changing cell does; a task that binds nothing (the bulk of ``map``)
takes none, so throughput does not pay a fork per task. An in-place change
of an existing object by such a task is protected from the next restore
point on.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.engine_identity import EngineIdentity
from ipytui.kernel.protocol.schema import reply_type
from ipytui.kernel.protocol.wire import Message, utcnow_iso
from ipytui.kernel.worker import handlers, ipp_lean, protection_hooks
from ipytui.kernel.worker.execution import format_exception

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

#: run in the namespace of an engine started by mpiexec, as ipengine's ``--mpi`` does
MPI_INIT = """\
from mpi4py import MPI
mpi_rank = MPI.COMM_WORLD.Get_rank()
mpi_size = MPI.COMM_WORLD.Get_size()
"""


class EngineTasks:
    """One engine's task state: its identity and the msg_ids it was told to abort."""

    def __init__(self, identity: EngineIdentity) -> None:
        self.identity = identity
        self.aborted: set[str] = set()

    def install(self, worker: WorkerContext) -> None:
        """Mark every reply as this engine's; answer abort and clear on the listener.

        ipyparallel's serialization is made ready now, before the worker says it
        is ready (0.15 s without the package's ``__init__`` and numpy, see
        ``ipp_lean``): the front starts the kernel while the controller completes
        the registration (at least one heartbeat period), so the first task does
        not pay for it, and a restored worker (a fork) has it.
        """
        worker.publisher.reply_hook = self.mark_reply
        handlers.QUICK["abort_request"] = self.abort_request
        handlers.QUICK["clear_request"] = self.clear_request
        try:
            ipp_lean.install()
            from ipyparallel.serialize import can, uncan

            can(None)  # the first call sets up the type maps
            uncan(None)
        except ImportError as exc:  # every task will say it; the engine still starts
            log.warning("ipyparallel cannot be imported (%s): tasks will fail", exc)

    def _identity(self) -> EngineIdentity:
        """The identity, with the engine id once the front has it (see ``id_file``)."""
        if self.identity.id < 0:
            self.identity = self.identity.resolved()
        return self.identity

    def mark_reply(self, content: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        """The reply metadata ipyparallel reads; an error gets its ``engine_info``."""
        status = str(content.get("status", "ok"))
        if status == "error":
            content.setdefault("engine_info", self._identity().info())
        return {**self._identity().reply_metadata(status), **metadata}

    # -- main thread ------------------------------------------------------
    def started(self, worker: WorkerContext) -> None:
        """Serving begins: an engine under mpiexec initializes MPI now (see ``init_mpi``)."""
        if self.identity.mpi_marker:
            self.init_mpi(worker)

    def init_mpi(self, worker: WorkerContext) -> None:
        """Initialize MPI in the first worker, in every engine of the job at once, then
        take a restore point that holds it.

        MPI_Init is collective (Open MPI exchanges addresses with every rank), so
        a first ``import mpi4py.MPI`` in a task sent to one engine would wait for
        the others forever; and a worker started after a crash cannot join the
        job again. So the first worker initializes MPI (as ipengine's ``--mpi``)
        and every restored worker is a fork that has it; a fresh worker after
        the first (no restore point was left) serves without MPI and says so.
        The front never initializes MPI (see ``ipytui.kernel.engine.mpi``).
        """
        marker = Path(self.identity.mpi_marker)
        if marker.exists():
            log.warning(
                "MPI was initialized by this engine's first worker, which is gone "
                "with no restore point: this worker cannot rejoin the MPI job and "
                "serves without MPI"
            )
            return
        try:
            exec(MPI_INIT, worker.namespace)  # noqa: S102 - fixed code, the engine's own
        except Exception as exc:  # noqa: BLE001 - the engine serves without MPI, and says why
            log.warning(
                "MPI not initialized (%s: %s); tasks run without it", type(exc).__name__, exc
            )
            return
        with contextlib.suppress(OSError):
            marker.touch()
        if worker.snapshots is not None:
            worker.snapshots.after_cell(worker, worker.execution_count)

    def run(self, worker: WorkerContext, msg: Message) -> None:
        """A request from the exec pipe: aborted ones are answered, not run."""
        if msg.msg_id in self.aborted:
            self.aborted.discard(msg.msg_id)
            worker.publisher.status("busy", msg)
            worker.publisher.reply(
                "shell",
                msg,
                reply_type(msg.msg_type),
                {"status": "aborted"},
                metadata={"status": "aborted"},
            )
            worker.publisher.status("idle", msg)
        elif msg.msg_type == "apply_request":
            self.apply(worker, msg)
        else:
            handlers.execute(worker, msg)

    def apply(self, worker: WorkerContext, msg: Message) -> None:
        """Call the function the message carries in the user namespace; reply with
        its result serialized, or with the error and its traceback."""
        pub = worker.publisher
        pub.parent = msg
        started = utcnow_iso()
        pub.status("busy", msg)
        namespace = worker.namespace
        before = _bindings(namespace)
        content, result = _call(worker, msg)
        worker.flush_streams()
        if content["status"] == "error":
            content["engine_info"] = self._identity().info("apply")
            pub.send("iopub", "error", {k: content[k] for k in ("ename", "evalue", "traceback")})
        changed = content["status"] == "ok" and _bindings(namespace) != before
        if changed and self._restore_point(worker, msg):
            pub.parent = None  # promoted: the supervisor answered this task for the dead worker
            return
        metadata = self.identity.reply_metadata(content["status"], started)
        with pub.together():
            pub.send(
                "shell",
                "apply_reply",
                content,
                parent=msg,
                metadata=metadata,
                identities=msg.identities,
                buffers=result,
            )
            pub.status("idle", msg)
        pub.parent = None

    def _restore_point(self, worker: WorkerContext, msg: Message) -> bool:
        """Count the task as a state-changing cell and take its restore point (True in a
        snapshot promoted to be the worker)."""
        count = worker.execution_count = worker.execution_count + 1
        worker.publisher.sup(
            {
                "event": "cell_done",
                "status": "ok",
                "execution_count": count,
                "msg_id": msg.msg_id,
                "inert": worker.snapshots is None,
                "user_names": handlers.count_user_names(worker.namespace),
                "changed": True,
            }
        )
        return protection_hooks.take_restore_point(worker, count, msg, "")

    # -- listener thread --------------------------------------------------
    def abort_request(self, worker: WorkerContext, channel: str, msg: Message) -> None:
        """Remember the msg_ids to answer 'aborted' instead of running them."""
        ids = msg.content.get("msg_ids") or []
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, list):
            ids = []
        self.aborted.update(str(i) for i in ids)
        worker.publisher.reply(channel, msg, "abort_reply", {"status": "ok"})

    def clear_request(self, worker: WorkerContext, channel: str, msg: Message) -> None:
        """Empty the user namespace (after the running task, never beside it)."""
        with worker.user_lock:
            for name in handlers.user_names(worker.namespace):
                worker.namespace.pop(name, None)
        worker.publisher.reply(channel, msg, "clear_reply", {"status": "ok"})


def _bindings(namespace: dict[str, Any]) -> dict[str, int]:
    """Name -> object identity: a task that rebinds, adds or drops a name changes it."""
    return {name: id(value) for name, value in namespace.items()}


def _call(worker: WorkerContext, msg: Message) -> tuple[dict[str, Any], list[bytes]]:
    """(reply content, result buffers) of the task; SIGINT interrupts it."""
    from ipyparallel.serialize import serialize_object, unpack_apply_message

    try:
        worker.executing = True
        f, args, kwargs = unpack_apply_message(msg.buffers, worker.namespace, copy=False)
        value = f(*args, **kwargs)
        worker.executing = False
        ipp_lean.ready_to_can()  # the task may have imported numpy, or ipyparallel's dependent
        buffers = [bytes(b) for b in serialize_object(value)]
    except BaseException as exc:  # noqa: BLE001 - every failure of the task is its answer
        worker.executing = False
        if isinstance(exc, SystemExit):
            log.info("a task raised SystemExit; the engine keeps serving")
        return {
            "status": "error",
            "ename": type(exc).__name__,
            "evalue": _text(exc),
            "traceback": format_exception(exc),
        }, []
    return {"status": "ok"}, buffers


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as why:  # noqa: BLE001 - a broken __str__ must not lose the error
        return f"<the exception's str() failed: {why}>"
