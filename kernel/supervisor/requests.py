"""The requests the supervisor answers itself: kernel_info, interrupt, shutdown,
restore, history; and refusing a request with an error reply.

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (its state is
the supervisor's), apart from the routing so each reads on its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.info import kernel_info_content
from ipytui.kernel.protocol.schema import HISTORY_FIELDS, content_problem, reply_type
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.supervisor.inflight import Pending, WorkerState

REVOKED = "your key is no longer on this kernel's allow-list"
SNAPSHOT_WAIT = 1.0  # seconds a restore waits for the last good cell's snapshot


class Requests:
    """Requests answered by the supervisor (see the module docstring)."""

    info: Any
    worker: WorkerState
    link: Any
    journal: Any
    kernel_id: str
    started: float
    restarts: int
    last_crash: str
    running: bool
    exit_on_restart: bool
    execution_count: int
    last_ok_count: int
    disk: Any
    silencer: Any
    restores_waiting: list[tuple[str, Message, float]]
    inflight: dict[str, Pending]
    restored_after: int
    user_names: int
    publish: Callable[..., None]
    _answer: Callable[..., None]
    restart_worker: Callable[[bool], str]
    interrupt_worker: Callable[[], None]
    announce: Callable[..., dict[str, Any]]
    protection_status: Callable[[], dict[str, Any]]
    timeline_data: Callable[[], dict[str, Any]]
    protection: dict[str, Any]
    guard: Any
    chain: Any

    def _revoked(self, channel: str, msg: Message) -> None:
        """A key taken off the allow-list while connected: answer its requests with why."""
        self.answer_error(channel, msg, "PermissionError", REVOKED)

    def answer_error(self, channel: str, msg: Message, ename: str, evalue: str,
                     traceback: list[str] | None = None) -> None:
        """Refuse a request ourselves. A cell also gets its error on IOPub, where
        clients (ours included) show a cell's failure, as for any failed cell."""
        if channel not in ("shell", "control") or not msg.msg_type.endswith("_request"):
            return
        error = {"ename": ename, "evalue": evalue, "traceback": traceback or [f"{ename}: {evalue}"]}
        pending = Pending(channel, msg, [])
        if msg.msg_type == "execute_request":
            self.publish("iopub", "status", {"execution_state": "busy"}, parent=msg)
            self.publish("iopub", "error", error, parent=msg)
        self._answer(pending, reply_type(msg.msg_type),
                     {"status": "error", **error, "execution_count": self.execution_count},
                     busy=msg.msg_type != "execute_request")

    def do_kernel_info_request(self, channel: str, msg: Message) -> None:
        content = kernel_info_content()
        content["ipytui"] = self.status_info()
        self._answer(Pending(channel, msg, []), "kernel_info_reply", content)

    def do_interrupt_request(self, channel: str, msg: Message) -> None:
        self.interrupt_running()
        self._answer(Pending(channel, msg, []), "interrupt_reply", {"status": "ok"})
        self.announce("interrupt", by=msg)

    def interrupt_running(self) -> None:
        """Interrupt the worker (interrupt_request or SIGINT to the supervisor); the
        running cell's output still on its way is cut (see ``silencer``)."""
        self.interrupt_worker()
        running = next((p for p in self.inflight.values()
                        if p.started and p.msg.msg_type == "execute_request"), None)
        if running is not None:
            self.silencer.start(running.msg.msg_id)

    def do_shutdown_request(self, channel: str, msg: Message) -> None:
        restart = bool(msg.content.get("restart", False))
        self._answer(Pending(channel, msg, []), "shutdown_reply", {"status": "ok", "restart": restart})
        if restart and not self.exit_on_restart:
            self.restart_worker(restore=False)
            self.announce("restart", by=msg, method="fresh", after_cell=0)
        else:
            self.running = False

    def do_ipytui_restore_request(self, channel: str, msg: Message) -> None:
        """Restart and restore: a fresh worker back at the latest snapshot or checkpoint.

        If the last cell's cell_done, or the last good cell's snapshot, has not
        arrived yet, the request waits for it (at most SNAPSHOT_WAIT seconds) without blocking the loop:
        ``check_restores`` answers it once the announcement is in, so a restore
        right after a cell never throws that cell's state away.
        """
        self.restores_waiting.append((channel, msg, time.monotonic() + SNAPSHOT_WAIT))
        self.check_restores()

    def check_restores(self) -> None:
        """Carry out the waiting restore requests whose snapshot is in (or overdue)."""
        while self.restores_waiting:
            channel, msg, deadline = self.restores_waiting[0]
            if self._snapshot_on_its_way() and time.monotonic() < deadline:
                return
            self.restores_waiting.pop(0)
            method = self.restart_worker(restore=True)
            after = self.restored_after if method == "snapshot" else 0
            self._answer(Pending(channel, msg, []), "ipytui_restore_reply",
                         {"status": "ok", "method": method, "after_cell": after})
            self.announce("restore", by=msg, method=method, after_cell=after)

    def _snapshot_on_its_way(self) -> bool:
        worker = self.worker
        if not worker.ready:
            return False
        # The cell_done tells whether the cell changed the namespace (and the
        # level it left): until it is in, the restore cannot know what is due.
        if worker.cell_done_due:
            return True
        # At level idle, checkpoint or off no snapshot follows each cell: nothing to wait for.
        return (self.last_ok_count > worker.snapshot_count
                and not worker.notes and self.protection.get("level") == "cell")

    def do_history_request(self, channel: str, msg: Message) -> None:
        """History comes from the journal, so it works while a cell runs or after a crash."""
        why = history_content_error(msg.content)
        if why is None:
            known = {k: v for k, v in msg.content.items() if k in HISTORY_FIELDS}
            reply = {"status": "ok", "history": self.journal.history_request(**known)}
        else:
            reply = {"status": "error", "ename": "TypeError", "evalue": why, "traceback": [why]}
        self._answer(Pending(channel, msg, []), "history_reply", reply)

    def status_info(self) -> dict[str, Any]:
        """Facts for kernel_info's ``ipytui`` key and the UI's status pane."""
        return {"pid": os.getpid(), "worker_pid": self.worker.pid, "started": self.started,
                "restarts": self.restarts, "last_crash": self.last_crash,
                "user_names": self.user_names,
                "encrypted": self.info.encrypted, "kernel_id": self.kernel_id,
                "rss": procs.rss_bytes(os.getpid(), self.worker.pid, self.worker.snapshot_pid),
                "disk": self.disk.state(), "protection": self.protection_status()}

    def do_usage_request(self, channel: str, msg: Message) -> None:
        """Memory of the kernel's processes, and the protection facts for status panes."""
        used = self.guard.used(self.worker.pid, self.chain) if self.worker.pid else 0
        self._answer(Pending(channel, msg, []), "usage_reply", {
            "hostname": os.uname().nodename, "pid": self.worker.pid or os.getpid(),
            "kernel_memory": used, "ipytui": {"protection": self.protection_status(),
                                              "timeline": self.timeline_data()}})


def history_content_error(content: dict[str, Any]) -> str | None:
    """Why a history_request's content is unusable, or None if it is fine."""
    return content_problem("history_request", content)
