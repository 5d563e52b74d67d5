"""Crash facts: why a worker died, the back-off between restarts, the recovery report."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .wire import Message

REPORT_MIME = "application/vnd.ipytui.recovery+json"
SNAPSHOT_NAME = b"ipytui-snapshot"  # a waiting snapshot's process name (snapshots.py)
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


def kernel_id_from(connection_file: Path) -> str:
    """kernel-abc123.json → abc123 (Jupyter's naming), else the file's stem."""
    stem = connection_file.stem
    return stem[len("kernel-"):] if stem.startswith("kernel-") else stem


def reap(pid: int) -> int | None:
    """The wait status of a dead child (or re-parented snapshot), None if unknown."""
    for _ in range(200):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return status
        time.sleep(0.005)
    return None


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def is_running(pid: int) -> bool:
    """True while pid exists and is not a zombie (os.kill(pid, 0) succeeds on zombies)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def rss_bytes(*pids: int) -> int:
    """Resident memory of the live ``pids`` summed, from /proc/<pid>/statm (0 if unknown).

    Pages a snapshot still shares copy-on-write with the worker count in both,
    so the sum is an upper bound of what the kernel holds.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in dict.fromkeys(p for p in pids if p > 0):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def waiting_snapshots() -> list[int]:
    """Snapshots re-parented to us (a subreaper) by a dead worker, oldest first.

    A worker announces each snapshot on its pipe, but one that dies right
    after forking (the next queued cell crashes at once) can take that
    message with it. Its orphaned snapshot is still ours: a live child that
    carries the snapshot's process name.
    """
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            name, rest = stat.split(b"(", 1)[1].rsplit(b")", 1)
            fields = rest.split()
            if int(fields[1]) == me and fields[0] not in (b"Z", b"X") and name == SNAPSHOT_NAME:
                found.append((int(fields[19]), int(entry)))
        except (OSError, ValueError, IndexError):
            continue
    return [pid for _, pid in sorted(found)]


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
        from .handlers import assigned_names

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
        return {
            "cause": self.cause, "code": self.code,
            "username": header.get("username", ""), "session": header.get("session", ""),
            "restored_from": method, "snapshot_after_cell": self.snapshot_count,
            "restored": restored, "lost": lost, "notes": notes,
            "seconds": round(now - self.died_at, 3),
        }

    def error_content(self, report: dict[str, Any]) -> dict[str, Any]:
        """ename/evalue/traceback for the crashed cell's error reply."""
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        if len(first) > 60:
            first = first[:57] + "..."
        where = f"cell [{self.cell}]" if self.cell else "this cell"
        return {"ename": "KernelDied", "evalue": f"{self.cause} while running {where}: {first}",
                "traceback": report_text(report).splitlines()}


def report_text(report: dict[str, Any]) -> str:
    """The recovery report as plain text, for clients that know no ipytui mimetype."""
    who = report.get("username") or "a client"
    lines = [f"KernelDied: {report['cause']}, in a cell run by {who}."]
    method = report["restored_from"]
    if method == "snapshot":
        lines.append(f"Restored the state after cell [{report['snapshot_after_cell']}] "
                     f"from a snapshot in {report['seconds']:.2f} s.")
    elif method == "checkpoint":
        lines.append(f"Restored from the last checkpoint in {report['seconds']:.2f} s.")
    elif method == "fresh":
        lines.append("No snapshot or checkpoint was available: the new kernel starts empty.")
    elif method == "stopped":
        lines.append("No new worker was started.")
    else:
        lines.append("A new worker is on its way.")
    if report["restored"]:
        lines.append("Restored: " + ", ".join(report["restored"]))
    for name, why in report["lost"].items():
        lines.append(f"Lost: {name} ({why})")
    lines.extend(f"Note: {note}" for note in report["notes"])
    return "\n".join(lines)


def report_bundle(report: dict[str, Any]) -> dict[str, Any]:
    """display_data content carrying both forms of the report."""
    return {"data": {"text/plain": report_text(report), REPORT_MIME: report},
            "metadata": {}, "transient": {}}


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
