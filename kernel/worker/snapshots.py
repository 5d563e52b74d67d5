"""Copy-on-write fork() snapshots of the worker, taken after each successful cell.

The child sleeps in ``sigtimedwait``. SIGUSR1 from the supervisor promotes it:
it connects fresh pipes and becomes the worker, with every object of the last
good state, unpicklable ones included. While it waits, it writes a durable
pickle checkpoint once the user pauses, at low priority. SIGKILL discards it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.paths import temporary_path
from ipytui.kernel.protocol.procs import SNAPSHOT_NAME
from ipytui.kernel.worker import checkpoint
from ipytui.kernel.worker.completion import jedi_lock_for_fork
from ipytui.kernel.worker.protection import Protection

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

CHECKPOINT_DELAY = 1.0  # seconds a snapshot must stay current before it checkpoints
# ... plus one second per this many resident bytes (at most CHECKPOINT_DELAY_MAX): pickling
# a big namespace takes a core and seconds, and a checkpoint is for a machine going down,
# so back-to-back cells and a quick %undo are not made to compete with it.
CHECKPOINT_BYTES_PER_SECOND = 128 * 2**20
CHECKPOINT_DELAY_MAX = 60.0
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


class PromotedError(BaseException):
    """SIGUSR1 during a checkpoint write: stop writing, become the worker.

    A BaseException, so the checkpoint's per-value ``except Exception`` lets it through.
    """


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
        self.writers: list[int] = []  # checkpoint-level writer children
        self.protection = Protection.from_config(config)
        self._writing = False  # in a snapshot: a checkpoint is being written
        self._promoted = False  # in a snapshot: SIGUSR1 came while it wrote

    def why_not(self) -> str | None:
        """The reason no snapshot can be taken now, or None."""
        if not self.enabled:
            return "snapshots are switched off"
        if self.protection.level == "off":
            return "protection is off"
        if self.memory_limit and _rss_bytes() > self.memory_limit:
            return f"the worker uses more than {self.memory_limit // 2**20} MiB (memory guard)"
        if _has_cuda():
            return "a CUDA context does not survive fork()"
        return None

    def after_cell(self, worker: WorkerContext, execution_count: int, msg_id: str = "",
                   cell: dict[str, Any] | None = None) -> None:
        """Fork a snapshot of the state after a good cell (in the parent: return at once).

        ``cell`` (who ran it, the names it assigned) goes to the supervisor's timeline.
        """
        reason = self.why_not()
        if reason is not None:
            worker.publisher.sup({"event": "no_snapshot", "why": reason})
            return
        threads = [t.name for t in threading.enumerate()
                   if t is not threading.main_thread() and not t.name.startswith("ipytui-")]
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        old_name = _rename(SNAPSHOT_NAME)  # the child is born with it
        try:
            # jedi first: waiting for it must not hold up the other threads' output
            with jedi_lock_for_fork(), worker.publisher.lock, worker.stdout._lock, \
                    worker.stderr._lock:
                pid = os.fork()
        except OSError as exc:
            _rename(old_name)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            worker.publisher.sup({"event": "no_snapshot", "why": f"fork failed: {exc}"})
            return
        if pid:
            _rename(old_name)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self._reap()
            self.children.append(pid)
            self.protection.took(pid, execution_count)
            worker.publisher.sup({"event": "snapshot", "pid": pid, "execution_count": execution_count,
                                  "lost_threads": threads, **(cell or {})})
            return
        self.children = []
        self._wait_for_promotion(worker, execution_count)
        _rename(old_name)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        worker.promote(lost_threads=threads, after_msg_id=msg_id)
        worker.publisher.sup({"event": "protection", **self.protection.info()})
        # The promoted state is the last good one: keep a snapshot of it at once,
        # so a second crash before the next good cell still restores everything.
        self.after_cell(worker, execution_count, msg_id, cell)

    def write_checkpoint_now(self, worker: WorkerContext, execution_count: int) -> bool:
        """The checkpoint level: a short-lived child pickles the namespace and exits.

        Not a restore point (it is never promoted); False while the last one still writes.
        """
        self._reap()
        if self.checkpoint_path is None or any(_alive(pid) for pid in self.writers):
            return self.checkpoint_path is None
        try:
            pid = os.fork()
        except OSError as exc:
            worker.publisher.sup({"event": "no_snapshot", "why": f"fork failed: {exc}"})
            return True
        if pid:
            self.writers.append(pid)
            self.children.append(pid)
            return True
        try:
            _rename(b"ipytui-ckpt")  # never mistaken for a waiting snapshot
            prctl = _prctl()
            if prctl is not None:
                prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: it dies with the worker
            with contextlib.suppress(OSError):
                os.nice(10)
            self._write_checkpoint(worker, execution_count)
        finally:
            os._exit(0)

    def drop_all(self) -> None:
        """Kill the restore points this worker forked (protection switched off)."""
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap()
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

    def _wait_for_promotion(self, worker: WorkerContext, execution_count: int) -> None:
        """In the child: wait for SIGUSR1; exit when the supervisor is gone."""
        with contextlib.suppress(OSError):
            os.nice(10)
        born = time.monotonic()
        written = self.checkpoint_path is None
        delay = min(CHECKPOINT_DELAY_MAX,
                    CHECKPOINT_DELAY + _rss_bytes() / CHECKPOINT_BYTES_PER_SECOND)
        while True:
            info = signal.sigtimedwait({signal.SIGUSR1}, POLL)
            if info is not None or self._promoted:
                self._promoted = False  # the snapshots this worker takes start afresh
                with contextlib.suppress(OSError):
                    os.nice(-10)  # only root may lower it back; harmless otherwise
                return
            if not _alive(self.supervisor_pid):
                os._exit(0)
            if not written and time.monotonic() - born >= delay:
                written = True
                self._write_checkpoint_until_promoted(worker, execution_count)

    def _write_checkpoint_until_promoted(self, worker: WorkerContext, execution_count: int) -> None:
        """Write the checkpoint, but let SIGUSR1 cut it short: a promotion (crash, undo)
        must not wait seconds for a big pickle. The snapshot writes it itself, not a
        child: a child would share its pages and hide what the snapshot holds alone."""
        self._writing = True

        def on_promotion(signum: int, frame: Any) -> None:
            self._promoted = True
            if self._writing:
                raise PromotedError

        old_handler = signal.signal(signal.SIGUSR1, on_promotion)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        try:
            self._write_checkpoint(worker, execution_count)
        except PromotedError:
            pass
        finally:
            self._writing = False
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
            signal.signal(signal.SIGUSR1, old_handler)
            if self._promoted and self.checkpoint_path is not None:
                temporary_path(self.checkpoint_path, os.getpid()).unlink(missing_ok=True)

    def _write_checkpoint(self, worker: WorkerContext, execution_count: int) -> None:
        from ipytui.kernel.worker.handlers import user_names

        assert self.checkpoint_path is not None
        try:
            state = checkpoint.capture(worker.namespace, user_names(worker.namespace), execution_count)
            checkpoint.write(self.checkpoint_path, state)
        except Exception:  # noqa: BLE001 - a failed checkpoint must not kill the snapshot
            log.exception("checkpoint failed")


def _rename(name: bytes) -> bytes:
    """Set this thread's name (/proc/PID/comm); returns the old one.

    A waiting snapshot is named SNAPSHOT_NAME so the supervisor can find one
    whose worker died before announcing it (procs.waiting_snapshots).
    """
    prctl = _prctl()
    if prctl is None:
        return name
    import ctypes

    old = ctypes.create_string_buffer(16)
    prctl(16, old, 0, 0, 0)  # PR_GET_NAME
    prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    return old.value


@functools.cache
def _prctl() -> Any:
    """libc's prctl, looked up once (twice per snapshot would cost 70 us)."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


def _alive(pid: int) -> bool:
    """False once the supervisor is gone, or a zombie its parent has not reaped yet."""
    from ipytui.kernel.protocol.procs import is_running

    return is_running(pid)


def _has_cuda() -> bool:
    import sys

    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return bool(cuda and cuda.is_initialized())
    except Exception:  # noqa: BLE001
        return False
