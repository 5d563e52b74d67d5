"""Questions the worker's main thread asks the supervisor (``%undo``, ``%timeline``),
and the exec pipe's reading around them and around the idle-time restore point.

A mixin of :class:`~ipytui.kernel.worker.loop.Worker`. While a magic waits for
its answer on the exec pipe, the executes that arrive are kept in order
(``deferred``) for the main loop; supervisor commands among them are applied.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipytui.kernel.protocol.wire import Message
    from ipytui.kernel.worker.pipe import WorkerPipe
    from ipytui.kernel.worker.publisher import Publisher
    from ipytui.kernel.worker.snapshots import Snapshots


class SupervisorQuestions:
    """Asking the supervisor from the main thread; see the module docstring."""

    exec_pipe: WorkerPipe
    publisher: Publisher
    snapshots: Snapshots | None
    deferred: list[list[bytes]]
    _asks: int
    _exec_message: Callable[[list[bytes]], Message | None]

    def _take_deferred(self) -> list[list[bytes]]:
        deferred, self.deferred = self.deferred, []
        return deferred

    def ask_supervisor(self, event: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send a question on "up" and wait on "exec" for its answer (main thread only).

        Executes that arrive meanwhile are kept, in order, for the main loop.
        The supervisor may also end this process instead of answering (an undo).
        """
        self._asks += 1
        ask = f"{os.getpid()}-{self._asks}"
        self.publisher.sup({**event, "ask": ask})
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
        """The next frames for the main loop; takes an idle-time snapshot (or, at level
        checkpoint, starts the checkpoint writer) while waiting."""
        if self.deferred:
            return self.deferred.pop(0)
        snaps = self.snapshots
        while snaps is not None and snaps.protection.due is not None:
            level = snaps.protection.level
            if level == "off":
                snaps.protection.due = None
            elif self.exec_pipe.wait(snaps.protection.idle_seconds if level != "cell" else 0):
                break  # not idle: the next cell first
            elif level == "checkpoint":
                # False while the last writer still writes: wait another idle moment.
                if snaps.write_checkpoint_now(self, snaps.protection.due[0]):
                    snaps.protection.due = None
            else:
                count, msg_id, cell = snaps.protection.due
                snaps.protection.due = None
                snaps.after_cell(self, count, msg_id, cell)  # a promoted child returns here too
        return self.exec_pipe.recv_multipart()  # re-read: a promoted snapshot has a new one
