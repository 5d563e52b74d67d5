"""Copy-on-write fork() snapshots of the worker: the restore points.

When they are taken is the protection level's choice (worker/protection.py);
the supervisor keeps several as a chain for ``%undo`` (docs/protection.md).
The child sleeps in ``sigtimedwait``. SIGUSR1 from the supervisor promotes it:
it connects fresh pipes and becomes the worker, with every object of the last
good state, unpicklable ones included. While it waits, it writes a durable
pickle checkpoint at low priority, CHECKPOINT_DELAY (more for a big namespace)
after it was born if it is still the newest point (so a burst of cells writes
few, and an older point never overwrites a newer state), and once more as its last act if the supervisor
dies before it wrote one: a kill of the whole kernel still leaves the state
of the last good cell on disk. SIGKILL discards it; SIGUSR1 during a write cuts
the write short (no temporary file is left).

A failed write (a full disk) is retried every CHECKPOINT_RETRY seconds. The
child tells the worker how each write went on a pipe the worker reads on a
small thread (the child must not touch the worker's own pipes), and the
worker passes that on to the supervisor, which tells the clients.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.procs import SNAPSHOT_NAME, is_running
from ipytui.kernel.protocol.spill_files import spill_path
from ipytui.kernel.protocol.syntax import timeline_names
from ipytui.kernel.worker import checkpoint, checkpoint_writer, point_copy, replay, spill
from ipytui.kernel.worker.forking import fork_dormant, fork_quietly, user_threads
from ipytui.kernel.worker.newest_point import NewestMark
from ipytui.kernel.worker.process_name import rename as _rename
from ipytui.kernel.worker.protection import Protection

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

# A snapshot writes its checkpoint CHECKPOINT_DELAY after it was born, plus one second
# per CHECKPOINT_BYTES_PER_SECOND resident past CHECKPOINT_FREE_BYTES (at most
# CHECKPOINT_DELAY_MAX): a small namespace is on disk at once, while pickling a big one
# (a core for seconds) does not compete with back-to-back cells or a quick %undo. A kill
# of the whole kernel does not wait for it: the orphaned newest snapshot writes at once.
CHECKPOINT_DELAY = 0.05
CHECKPOINT_FREE_BYTES = 128 * 2**20  # an interpreter with its usual imports
CHECKPOINT_BYTES_PER_SECOND = 128 * 2**20
CHECKPOINT_DELAY_MAX = 60.0
CHECKPOINT_RETRY = 5.0  # seconds between tries while the disk refuses
POLL = 0.5


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


class Snapshots:
    """Takes snapshots in the worker; the promoted child returns from ``after_cell``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.enabled = bool(config.get("snapshots", True))
        total = _total_memory()
        self.memory_limit = int(config.get("snapshot_memory_limit") or (total // 2 if total else 0))
        path = config.get("checkpoint_path")
        self.checkpoint_path = Path(path) if path else None
        self.supervisor_pid = int(config.get("supervisor_pid") or os.getppid())
        self.children: list[int] = []
        self.writers: list[int] = []  # level checkpoint: the short-lived writer children
        self._notes_read, self._notes_write = os.pipe()  # child -> worker: checkpoint outcomes
        os.set_blocking(self._notes_write, False)  # a child never waits on the worker
        self._notes_reader_pid = 0  # the process whose thread reads the notes
        self.newest = NewestMark()  # which point is the newest, for every point to read
        self.blocked: str | None = None  # why this process must not fork (the debugger is on)
        self.protection = Protection.from_config(config)
        self._promoted = False  # in a snapshot: SIGUSR1 came while it wrote
        self.regions: list[tuple[int, int]] = []  # the big mappings the next point spills
        self.spill: spill.Spill | None = None  # in a snapshot: its spilled buffers
        self.rewrites = point_copy.RewriteGuess()  # the big buffers the last cell rewrote
        self.held: dict[str, Any] | None = None  # a point's event that leaves with the reply
        self.cell_code = ""  # the code of the cell the next point is taken after
        # The undo log (worker/replayable.py): ``exact`` while the state is the newest
        # point's plus the cells logged since (``logged`` of them); ``kept`` once the
        # running cell has a point or a log entry.
        self.exact = False
        self.logged = 0
        self.kept = False
        self.log_pipe = replay.LogPipe()  # logged cells, to the newest point (worker/replay.py)

    def _read_notes(self, worker: WorkerContext) -> None:
        """Start the thread that forwards the children's checkpoint notes (once per process)."""
        if self._notes_reader_pid == os.getpid() or self.checkpoint_path is None:
            return
        self._notes_reader_pid = os.getpid()
        threading.Thread(
            target=self._forward_notes, args=(worker,), daemon=True, name="ipytui-checkpoint-notes"
        ).start()

    def _forward_notes(self, worker: WorkerContext) -> None:
        with os.fdopen(os.dup(self._notes_read), "rb", buffering=0) as notes:
            for line in iter(notes.readline, b""):
                with contextlib.suppress(ValueError):
                    worker.publisher.sup({"event": "checkpoint", **json.loads(line)})

    def why_not(self) -> str | None:
        """The reason no snapshot can be taken now, or None."""
        if not self.enabled:
            return "snapshots are switched off"
        if self.blocked:
            return self.blocked
        if self.protection.level == "off":
            return "protection is off"
        if self.memory_limit and _rss_bytes() > self.memory_limit:
            return f"the worker uses more than {self.memory_limit // 2**20} MiB (memory guard)"
        if _has_cuda():
            return "a CUDA context does not survive fork()"
        return None

    def after_cell(
        self,
        worker: WorkerContext,
        execution_count: int,
        msg_id: str = "",
        cell: dict[str, Any] | None = None,
        hold: bool = False,
    ) -> bool:
        """Fork a snapshot of the state after a good cell. The parent returns False at
        once; a snapshot returns True when it has been promoted to be the worker.

        ``cell`` (who ran it, the names it assigned) goes to the supervisor's timeline.
        With ``hold`` the point's event waits in ``held`` (see protection_hooks).
        """
        self._read_notes(worker)
        reason = self.why_not()
        if reason is not None:
            worker.publisher.sup({"event": "no_snapshot", "why": reason})
            return False
        threads = user_threads()
        self.regions = self.protection.regions_now()  # what the child will spill
        rewritten = [] if threads else self.rewrites.rewritten(self.protection.big)
        born, delay = time.monotonic(), self._checkpoint_delay()
        # The point sleeps at once (worker/dormant_fork.py), unless it has big buffers
        # to spill; it wakes for its checkpoint or its poll.
        dormant = 0.0 if self.regions else min(POLL, delay) if self.checkpoint_path else POLL
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        old_name = _rename(SNAPSHOT_NAME)  # the child is born with it
        try:
            log_ends = os.pipe()
        except OSError:
            log_ends = (-1, -1)
        try:
            pid, promoted = fork_dormant(worker, dormant)
        except OSError as exc:
            replay.close_ends(log_ends)
            _rename(old_name)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            worker.publisher.sup({"event": "no_snapshot", "why": f"fork failed: {exc}"})
            return False
        if pid:
            self.log_pipe.writer(log_ends)
            copied = 0  # the bytes of the point's pages the worker copied away now
            if rewritten:  # the point keeps the pages as they were; the worker gets copies
                copied = point_copy.copy_over(rewritten)
            _rename(old_name)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self._reap()
            self.children.append(pid)
            self.newest.set(pid)
            self.protection.took(pid, execution_count)
            self.exact, self.logged, self.kept = True, 0, True
            event = {
                "event": "snapshot",
                "pid": pid,
                "execution_count": execution_count,
                "lost_threads": threads,
                "copied": copied,
                **(cell or {}),
            }
            if hold:
                self.held = event
            else:
                worker.publisher.sup(event)
            return False
        self.children, self.writers = [], []
        self.log_pipe.reader(log_ends)
        if not promoted:
            self._wait_for_promotion(worker, execution_count, born + delay)
        _rename(old_name)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.exact = False  # until the point below is taken
        worker.promote(lost_threads=threads, after_msg_id=msg_id)
        self.protection.maps_due = True  # its ranges may be mappings of the spill file now
        worker.publisher.sup({"event": "protection", **self.protection.info()})
        # The promoted state is the last good one: keep a snapshot of it at once,
        # so a second crash before the next good cell still restores everything. The
        # supervisor has answered that cell: its names go with this point's event.
        self.after_cell(worker, execution_count, msg_id, {**(cell or {}), "changed": timeline_names(self.cell_code)})
        return True

    def log(self, count: int, code: str, user: str, msg_id: str = "") -> dict[str, Any] | None:
        """Log a cell after the newest point instead of forking one: into that point's
        pipe (it replays the cell if it is orphaned), and the event for the supervisor.
        None if the pipe did not take it (full, or the line too long): fork instead."""
        if not self.log_pipe.write(count, code):
            return None
        self.logged += 1
        self.kept = True
        return {"event": "logged", "count": count, "code": code, "user": user,
                "point": self.protection.snapshot_pid, "msg_id": msg_id}

    def write_checkpoint_now(self, worker: WorkerContext, execution_count: int) -> bool:
        """Level checkpoint: a short-lived child pickles the namespace and exits.

        Not a restore point (never promoted, not named as one). Its outcome reaches
        the supervisor as any checkpoint's does (the notes pipe). False while the
        last writer still writes (the caller tries again at the next idle moment).
        """
        self._reap()
        if self.checkpoint_path is None:
            return True
        if self.writers:
            return False
        self._read_notes(worker)
        try:
            pid = fork_quietly(worker)
        except OSError as exc:
            worker.publisher.sup({"event": "no_snapshot", "why": f"fork failed: {exc}"})
            return True
        if pid:
            self.writers.append(pid)
            self.children.append(pid)
            return True
        checkpoint_writer.become_writer(lambda: self._write_checkpoint(worker, execution_count))

    def drop_all(self) -> None:
        """Kill the restore points this worker forked (protection switched off or to
        checkpoint). A checkpoint writer finishes its write."""
        for pid in self.children:
            if pid in self.writers:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap()
        self.exact = False
        self.protection.dropped()

    def _reap(self) -> None:
        """Collect snapshots the supervisor has discarded (no zombies)."""
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.remove(pid)
                if pid in self.writers:
                    self.writers.remove(pid)

    def _checkpoint_delay(self) -> float:
        """Seconds a point waits after its birth before it writes its checkpoint."""
        big = max(0, _rss_bytes() - CHECKPOINT_FREE_BYTES)
        return min(CHECKPOINT_DELAY_MAX, CHECKPOINT_DELAY + big / CHECKPOINT_BYTES_PER_SECOND)

    def _wait_for_promotion(self, worker: WorkerContext, execution_count: int, due: float) -> None:
        """In the child: wait for SIGUSR1 (writing the checkpoint at ``due`` if still the
        newest); exit when the supervisor is gone."""
        written = self.checkpoint_path is None
        if self.checkpoint_path is not None:  # the big buffers to disk (worker/spill.py)
            path = spill_path(self.checkpoint_path, os.getpid())
            self.spill = checkpoint_writer.run_nicer(
                lambda: spill.spill_point(path, self.regions, self._note))
        while True:
            wait = POLL if written else min(POLL, max(0.0, due - time.monotonic()))
            # A promotion that cut a checkpoint write short was taken by its handler:
            # waiting POLL for another SIGUSR1 would keep the kernel down for nothing.
            info = None if self._promoted else signal.sigtimedwait({signal.SIGUSR1}, wait)
            if info is not None or self._promoted:
                self._promoted = False  # the snapshots this worker takes start afresh
                spill.promote_lazily(self.spill)  # the big buffers stay mapped from disk
                self.spill = None
                return
            if not is_running(self.supervisor_pid):  # gone, or a zombie not reaped yet
                if self.newest.is_me(str(self.checkpoint_path)):  # killed: leave its state,
                    logged = self.log_pipe.read()  # with the cells logged after this point
                    if logged or not written:
                        count = replay.replay_orphaned(worker, logged) or execution_count
                        self._write_checkpoint(worker, count)
                if self.spill is not None:
                    self.spill.remove()
                os._exit(0)
            if not written and time.monotonic() >= due:
                # In a chain an older point must not overwrite the newer state on disk:
                # the newest point writes it.
                written = not self.newest.is_me(
                    str(self.checkpoint_path)
                ) or self._write_checkpoint_until_promoted(worker, execution_count)
                due = time.monotonic() + CHECKPOINT_RETRY

    def _write_checkpoint_until_promoted(self, worker: WorkerContext, execution_count: int) -> bool:
        """Write the checkpoint on a thread WRITER_NICE nicer (worker/checkpoint_writer.py:
        the point keeps the worker's priority), and let SIGUSR1 cut it short: a
        promotion (crash, undo) must not wait seconds for a big pickle. The point
        writes it itself, not a child: a child would share its pages and hide what
        the point holds alone. A write cut short leaves no temporary file
        (protocol/atomic.py). A promotion that came before the write is taken first."""
        if signal.sigtimedwait({signal.SIGUSR1}, 0) is not None:  # taken, not left pending
            self._promoted = True
            return False
        return checkpoint_writer.write_until_signal(
            lambda: self._write_checkpoint(worker, execution_count), self._on_promotion)

    def _on_promotion(self) -> None:
        self._promoted = True

    def _write_checkpoint(self, worker: WorkerContext, execution_count: int) -> bool:
        """Write the checkpoint; True if it is on disk. The outcome goes to the worker."""
        from ipytui.kernel.protocol.atomic import disk_reason
        from ipytui.kernel.worker.handlers import user_names

        assert self.checkpoint_path is not None
        try:
            state = checkpoint.capture(
                worker.namespace, user_names(worker.namespace), execution_count
            )
            # A spilled buffer is read from the spill file; its pages go back after each one.
            checkpoint.write(
                self.checkpoint_path, state, self.spill.page_out if self.spill is not None else None
            )
        except Exception as exc:  # noqa: BLE001 - a failed checkpoint must not kill the snapshot
            log.warning("checkpoint failed: %s", exc)
            self._note({"ok": False, "why": disk_reason(exc), "execution_count": execution_count})
            return False
        self._note(
            {
                "ok": True,
                "execution_count": execution_count,
                "lost": sorted(state["unpicklable"])[:20],
            }
        )
        return True

    def _note(self, note: dict[str, Any]) -> None:
        """One line to the worker's notes thread; dropped if the pipe is full."""
        with contextlib.suppress(OSError):
            os.write(self._notes_write, json.dumps(note).encode() + b"\n")


def _has_cuda() -> bool:
    import sys

    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return bool(cuda and cuda.is_initialized())
    except Exception:  # noqa: BLE001
        return False
