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
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.supervisor.inflight import Pending, WorkerState

REVOKED = "your key is no longer on this kernel's allow-list"


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
    publish: Callable[..., None]
    _answer: Callable[..., None]
    restart_worker: Callable[[bool], str]
    interrupt_worker: Callable[[], None]
    protection_status: Callable[[], dict[str, Any]]
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
        self._answer(pending, msg.msg_type.replace("_request", "_reply"),
                     {"status": "error", **error, "execution_count": self.execution_count},
                     busy=msg.msg_type != "execute_request")

    def do_kernel_info_request(self, channel: str, msg: Message) -> None:
        content = kernel_info_content()
        content["ipytui"] = self.status_info()
        self._answer(Pending(channel, msg, []), "kernel_info_reply", content)

    def do_interrupt_request(self, channel: str, msg: Message) -> None:
        self.interrupt_worker()
        self._answer(Pending(channel, msg, []), "interrupt_reply", {"status": "ok"})

    def do_shutdown_request(self, channel: str, msg: Message) -> None:
        restart = bool(msg.content.get("restart", False))
        self._answer(Pending(channel, msg, []), "shutdown_reply", {"status": "ok", "restart": restart})
        if restart and not self.exit_on_restart:
            self.restart_worker(restore=False)
        else:
            self.running = False

    def do_ipytui_restore_request(self, channel: str, msg: Message) -> None:
        """Restart and restore: a fresh worker back at the latest snapshot or checkpoint."""
        self._await_snapshot()
        method = self.restart_worker(restore=True)
        self._answer(Pending(channel, msg, []), "ipytui_restore_reply",
                     {"status": "ok", "method": method})

    def _await_snapshot(self, timeout: float = 1.0) -> None:
        """The worker forks its snapshot just after a good cell's reply: let its
        announcement (and the cell_done before it) arrive before restoring, so a
        restore right after a cell does not miss it."""
        deadline = time.monotonic() + timeout
        while (self.worker.ready and time.monotonic() < deadline
               and (self.worker.cell_done_due or (self.last_ok_count > self.worker.snapshot_count
                                                  and not self.worker.notes))):
            self.link.read_up(timeout_ms=20)

    def do_history_request(self, channel: str, msg: Message) -> None:
        """History comes from the journal, so it works while a cell runs or after a crash."""
        why = history_content_error(msg.content)
        if why is None:
            reply = {"status": "ok", "history": self.journal.history_request(**msg.content)}
        else:
            reply = {"status": "error", "ename": "TypeError", "evalue": why, "traceback": [why]}
        self._answer(Pending(channel, msg, []), "history_reply", reply)

    def status_info(self) -> dict[str, Any]:
        """Facts for kernel_info's ``ipytui`` key and the UI's status pane."""
        return {"pid": os.getpid(), "worker_pid": self.worker.pid, "started": self.started,
                "restarts": self.restarts, "last_crash": self.last_crash,
                "encrypted": self.info.encrypted, "kernel_id": self.kernel_id,
                "rss": procs.rss_bytes(os.getpid(), self.worker.pid, self.worker.snapshot_pid),
                "protection": self.protection_status()}

    def do_usage_request(self, channel: str, msg: Message) -> None:
        """Memory of the kernel's processes, and the protection facts for status panes."""
        used = self.guard.used(self.worker.pid, self.chain) if self.worker.pid else 0
        self._answer(Pending(channel, msg, []), "usage_reply", {
            "hostname": os.uname().nodename, "pid": self.worker.pid or os.getpid(),
            "kernel_memory": used, "ipytui": {"protection": self.protection_status()}})


_HISTORY_TYPES: dict[str, tuple[type, ...]] = {
    "output": (bool,), "raw": (bool,), "hist_access_type": (str,), "session": (int,),
    "start": (int,), "stop": (int, type(None)), "n": (int, type(None)), "pattern": (str,),
    "unique": (bool,),
}


def history_content_error(content: dict[str, Any]) -> str | None:
    """Why a history_request's content is unusable, or None if it is fine."""
    for key, value in content.items():
        types = _HISTORY_TYPES.get(key)
        if types is not None and not isinstance(value, types):
            return f"history_request content {key!r} must be {' or '.join(t.__name__ for t in types)}"
    if content.get("hist_access_type", "tail") not in ("tail", "range", "search"):
        return f"unknown hist_access_type {content.get('hist_access_type')!r}"
    return None
