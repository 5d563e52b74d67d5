"""The main thread's reading of the exec pipe: executes and clients' comm messages
in the shell channel's order, supervisor commands among them, the questions it
asks the supervisor (``%undo``, ``%timeline``) and the idle-time restore point.

A mixin of :class:`~ipytui.kernel.worker.loop.Worker`. While a magic waits for
its answer on the exec pipe, the messages that arrive are kept in order
(``deferred``) for the main loop; supervisor commands among them are applied.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.wire import Codec, Message, WireError
from ipytui.kernel.worker import checkpoint
from ipytui.kernel.worker.protection import SETTINGS
from ipytui.kernel.worker.protection_hooks import CONSOLIDATE_SECONDS, state_touched
from ipytui.kernel.worker.replay import replay

if TYPE_CHECKING:
    from ipytui.kernel.worker.pipe import WorkerPipe
    from ipytui.kernel.worker.publisher import Publisher
    from ipytui.kernel.worker.snapshots import Snapshots

log = logging.getLogger("ipytui.worker")


class SupervisorQuestions:
    """Reading the exec pipe and asking the supervisor; see the module docstring."""

    exec_pipe: WorkerPipe
    pipe_codec: Codec
    execution_count: int
    publisher: Publisher
    snapshots: Snapshots | None
    deferred: list[list[bytes]]
    _asks: int

    def _exec_message(self, frames: list[bytes]) -> Message | None:
        """An execute or comm message from the exec pipe; supervisor commands on it are
        applied in order."""
        if frames[0] == b"sup":
            command = json.loads(frames[1])
            if command.get("cmd") == "resume":
                self.execution_count = int(command.get("execution_count", self.execution_count))
                setting = command.get("protection")
                if self.snapshots is not None and setting in SETTINGS:
                    self.snapshots.protection.resume(setting)
                if command.get("replay"):  # the cells logged after this point (worker/replay.py)
                    replay(self, command["replay"])  # type: ignore[arg-type]
            elif command.get("cmd") == "checkpoint":  # the kernel is about to be culled
                self.publisher.sup(checkpoint_now(self))
            return None
        try:
            msg = self.pipe_codec.deserialize(frames[1:])
        except WireError as exc:
            log.warning("dropped a message from the supervisor: %s", exc)
            return None
        if msg.msg_type != "execute_request" or getattr(self, "tasks", None) is not None:
            state_touched(self)  # a comm's callback or an engine's task: user code
        return msg

    def take_queued_executes(self) -> list[Message]:
        """The executes that have arrived but not run yet (to abort them after an error).

        The comm messages among them stay queued, in order: as in ipykernel, an
        error aborts only executes.
        """
        taken: list[Message] = []
        kept: list[list[bytes]] = []
        for frames in [*self._take_deferred(), *iter(self.exec_pipe.recv_nowait, None)]:
            msg = self._exec_message(frames)
            if msg is None:
                continue
            if msg.msg_type == "execute_request":
                taken.append(msg)
            else:
                kept.append(frames)
        self.deferred = kept
        return taken

    def _take_deferred(self) -> list[list[bytes]]:
        deferred, self.deferred = self.deferred, []
        return deferred

    def new_ask(self) -> str:
        """A fresh id for a question to the supervisor (its answer carries it)."""
        self._asks += 1
        return f"{os.getpid()}-{self._asks}"

    def ask_supervisor(
        self, event: dict[str, Any], timeout: float = 30.0, ask: str = ""
    ) -> dict[str, Any]:
        """Send a question on "up" and wait on "exec" for its answer (main thread only).

        Executes and comm messages that arrive meanwhile are kept, in order, for the
        main loop.
        The supervisor may also end this process instead of answering (an undo).
        """
        ask = ask or self.new_ask()
        self.publisher.sup({**event, "ask": ask})
        return self.await_answer(ask, timeout)

    def await_answer(self, ask: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait on "exec" for the supervisor's answer to question ``ask`` (see above)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.exec_pipe.wait(deadline - time.monotonic()):
                break
            frames = self.exec_pipe.recv_multipart()
            if frames is None:
                break
            if frames[0] == b"sup":
                command = json.loads(frames[1])
                if command.get("cmd") == "answer" and command.get("ask") == ask:
                    return command
                self._exec_message(frames)
            else:
                self.deferred.append(frames)
        return {"error": "the supervisor did not answer"}

    def _next_execute(self) -> list[bytes] | None:
        """The next frames for the main loop (an execute or a comm message); takes an idle-time snapshot (or, at level
        checkpoint, starts the checkpoint writer) while waiting."""
        if self.deferred:
            return self.deferred.pop(0)
        snaps = self.snapshots
        while snaps is not None and snaps.protection.due is not None:
            level = snaps.protection.level
            if level == "off":
                snaps.protection.due = None
            elif self.exec_pipe.wait(
                snaps.protection.idle_seconds if level != "cell"
                else CONSOLIDATE_SECONDS if snaps.logged else 0
            ):
                break  # not idle: the next cell first
            elif level == "checkpoint":
                # False while the last writer still writes: wait another idle moment.
                if snaps.write_checkpoint_now(self, snaps.protection.due[0]):
                    snaps.protection.due = None
            else:
                count, msg_id, cell = snaps.protection.due
                snaps.protection.due = None
                if "changed" not in cell:  # answered by now: the names go with the event
                    from ipytui.kernel.protocol.syntax import timeline_names

                    cell = {**cell, "changed": timeline_names(snaps.cell_code)}
                snaps.after_cell(self, count, msg_id, cell)  # a promoted child returns here too
        return self.exec_pipe.recv_multipart()  # re-read: a promoted snapshot has a new one


def checkpoint_now(worker: Any) -> dict[str, Any]:
    """Write the checkpoint of the namespace as it is (between cells, on the main thread).

    Returns the event the supervisor waits for: ``{"event": "checkpointed", "ok": ...}``.
    """
    from ipytui.kernel.worker.handlers import user_names

    snapshots = worker.snapshots
    path = snapshots.checkpoint_path if snapshots is not None else None
    if path is None:
        return {"event": "checkpointed", "ok": False, "why": "no checkpoint path"}
    try:
        state = checkpoint.capture(
            worker.namespace, user_names(worker.namespace), worker.execution_count
        )
        checkpoint.write(path, state)
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, the worker goes on
        log.exception("checkpoint failed")
        return {"event": "checkpointed", "ok": False, "why": f"{type(exc).__name__}: {exc}"}
    return {"event": "checkpointed", "ok": True, "execution_count": worker.execution_count}
