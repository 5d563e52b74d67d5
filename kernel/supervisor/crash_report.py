"""Crash facts in the supervisor: why a worker died, the back-off between
restarts, and the record the recovery report is made from."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol.recovery import report_text
from ipytui.kernel.protocol.syntax import assigned_names
from ipytui.kernel.protocol.wire import Message

BACKOFF = (0.0, 0.0, 0.5, 1.0, 2.0)  # delay before the n-th crash in a row is restarted

_SIGNAL_TEXT = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGKILL: "killed (SIGKILL: out of memory, or killed by hand)",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGTERM: "terminated",
}


def describe_exit(status: int | None) -> str:
    """'segmentation fault (SIGSEGV)', 'exit code 3', ..."""
    if status is None:
        return "the worker process vanished"
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        sig = signal.Signals(-code)
        return f"{_SIGNAL_TEXT.get(sig, 'killed by a signal')} ({sig.name})"
    return f"the worker exited with code {code}"


@dataclass
class CrashRecord:
    """One worker death and what is needed to report it."""

    cause: str
    request: Message | None
    notes: list[str] = field(default_factory=list)
    snapshot_count: int = 0
    died_at: float = field(default_factory=time.monotonic)
    method: str = "fresh"
    ok_since_start: bool = False
    restart_began: float = 0.0
    cell: int | None = None  # the crashed cell's execution count, if it was seen
    protection: dict[str, Any] = field(default_factory=dict)  # the level when it died
    changed_cells: list[int] = field(default_factory=list)  # state-changing cells before it

    @classmethod
    def from_exit(cls, status: int | None, request: Message | None, notes: list[str],
                  snapshot_count: int = 0) -> CrashRecord:
        return cls(cause=describe_exit(status), request=request, notes=list(notes),
                   snapshot_count=snapshot_count)

    @property
    def code(self) -> str:
        return self.request.content.get("code", "") if self.request else ""

    def report(self, ready: dict[str, Any] | None, now: float) -> dict[str, Any]:
        """The structured recovery report (the JSON mimetype's content)."""
        header = self.request.header if self.request else {}
        restored = list((ready or {}).get("names", []))
        lost: dict[str, str] = {}
        for name in assigned_names(self.code):
            lost[name] = "assigned by the crashing cell"
        checkpoint = (ready or {}).get("restored") or {}
        lost.update(checkpoint.get("lost", {}))
        if ready is None and self.method != "stopped":
            method, notes = "pending", [*self.notes, "no worker was ready in time; it may still come"]
        else:
            method, notes = self.method, list(self.notes)
        for name in restored:
            lost.pop(name, None)
        unprotected = [c for c in self.changed_cells if c > self.snapshot_count]
        if method == "snapshot" and unprotected:
            cells = ", ".join(f"[{c}]" for c in unprotected)
            notes.append(f"Not protected: the changes of cells {cells}, made after the restore "
                         f"point (protection level {self.protection.get('level', '?')}), are lost")
        return {
            "cause": self.cause, "code": self.code,
            "username": header.get("username", ""), "session": header.get("session", ""),
            "restored_from": method, "snapshot_after_cell": self.snapshot_count,
            "restored": restored, "lost": lost, "notes": notes,
            "seconds": round(now - self.died_at, 3), "execution_count": self.cell,
            "protection": self.protection.get("level", ""), "unprotected": unprotected,
        }

    def error_content(self, report: dict[str, Any]) -> dict[str, Any]:
        """ename/evalue/traceback for the crashed cell's error reply."""
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        if len(first) > 60:
            first = first[:57] + "..."
        where = f"cell [{self.cell}]" if self.cell else "this cell"
        return {"ename": "KernelDied", "evalue": f"{self.cause} while running {where}: {first}",
                "traceback": report_text(report).splitlines()}


class CrashHistory:
    """Counts crashes in a row (no finished cell between) and decides the back-off."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def cell_finished(self) -> None:
        self.in_a_row = 0

    def add(self, ok_since_start: bool = False) -> float | None:
        """The delay before restarting, or None to stop restarting."""
        self.in_a_row += 1
        if self.in_a_row > len(BACKOFF):
            return None
        return BACKOFF[self.in_a_row - 1]
