"""Replaying logged cells in a promoted restore point (the undo log's second half).

A cell that ``worker/replayable.py`` admits took no restore point: the
supervisor logged its code after the newest point. When that point is woken
(a crash, ``%undo``, a restart that restores), the supervisor sends the
logged cells it must hold with its ``resume`` command, and the woken worker
runs them here, in order, before anything else, with no output: they run no
user code and read nothing outside the namespace, so they change it exactly
as they did the first time. Each replayed cell is logged again after the
point the promoted worker took of itself, so it can be undone as before.

The worker also writes each logged cell into a pipe only the newest point
reads (``LogPipe``), before the reply: when the whole kernel is killed, that
point (orphaned, it writes the last checkpoint) replays them first, so the
checkpoint on disk holds every cell a client saw answered.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from ipytui.kernel.worker.execution import run_cell

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")


def replay(worker: WorkerContext, cells: list[Any]) -> int:
    """Run the logged ``cells`` ([count, code, user] each), oldest first; returns how
    many ran. A cell that fails (it should not) stops the replay: the supervisor
    hears which, and the clients read what was lost."""
    snapshots = worker.snapshots
    done = 0
    for entry in cells:
        try:
            count, code = int(entry[0]), str(entry[1])
            user = str(entry[2]) if len(entry) > 2 else ""
        except (TypeError, ValueError, IndexError):
            log.warning("ignored a malformed logged cell: %r", entry)
            continue
        outcome = _rerun(worker, count, code)
        if outcome.status != "ok":
            why = f"{outcome.ename}: {outcome.evalue}"
            log.error("logged cell [%d] failed when replayed: %s", count, why)
            if snapshots is not None:
                snapshots.exact = False
            worker.publisher.sup({"event": "replay_failed", "count": count, "why": why})
            return done
        done += 1
        if snapshots is not None and snapshots.exact:
            event = snapshots.log(count, code, user)
            if event is not None:
                worker.publisher.sup({**event, "replayed": True})
    return done


def _rerun(worker: WorkerContext, count: int, code: str) -> Any:
    """Run a logged cell again as ``execute`` ran it (its input remembered), with no
    output: it displays nothing, and what a finalizer of the user's might print (an
    object the cell freed) was shown the first time."""
    from ipytui.kernel.worker.handlers import remember_input, transform

    remember_input(worker.namespace, code, count)
    worker.displayhook.silent = True
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return run_cell(transform(code), count, worker.namespace, worker.displayhook)
    finally:
        worker.displayhook.silent = False


def replay_orphaned(worker: WorkerContext, cells: list[Any]) -> int:
    """In the newest point of a killed kernel: run the cells logged after it before
    its last checkpoint. Returns the last cell that ran (0: none)."""
    last = 0
    for count, code in cells:
        if _rerun(worker, count, code).status != "ok":
            break
        last = count
    return last


def close_ends(ends: tuple[int, int]) -> None:
    for fd in ends:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class LogPipe:
    """The worker's write end to its newest point's pipe of logged cells, or the
    point's read end. One pipe per point: a point reads only the cells logged
    after it."""

    def __init__(self) -> None:
        self.fd = -1  # the worker's write end, or the point's read end
        self.writing = False

    def writer(self, ends: tuple[int, int]) -> None:
        """In the worker after a fork: write to the new point's pipe, forget the old."""
        close_ends((self.fd, ends[0]))
        self.fd, self.writing = ends[1], ends[1] >= 0
        if self.writing:
            os.set_blocking(self.fd, False)  # a full pipe takes a point, never a wait

    def reader(self, ends: tuple[int, int]) -> None:
        """In the point: keep the read end of its own pipe only."""
        close_ends((self.fd, ends[1]))
        self.fd, self.writing = ends[0], False
        if self.fd >= 0:
            os.set_blocking(self.fd, False)

    def write(self, count: int, code: str) -> bool:
        """One logged cell (a line up to PIPE_BUF is written whole); False if it did not go."""
        if not self.writing:
            return False
        line = json.dumps([count, code]).encode() + b"\n"
        try:
            return len(line) <= 4096 and os.write(self.fd, line) == len(line)
        except OSError:  # full, or the point is gone
            return False

    def read(self) -> list[tuple[int, str]]:
        """In the point: the cells logged after it, in order (what arrived whole)."""
        data = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 65536):
                data += chunk
        cells = []
        for line in data.split(b"\n"):
            with contextlib.suppress(ValueError, TypeError):
                count, code = json.loads(line)
                cells.append((int(count), str(code)))
        return cells
