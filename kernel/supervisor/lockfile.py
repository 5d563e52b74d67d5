"""Lock files: a running kernel is marked; a lock whose process is gone is stale.

A stale lock is how the next ``ipytui`` start knows a kernel went down
uncleanly (kill -9, power loss) and can offer recovery from its checkpoint.
The lock also says why a kernel is where it is: who launched it (a Jupyter
kernel manager kills its kernels on purpose), since when it has had no
clients, and whether it was culled (stopped cleanly, checkpoint kept).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ipytui.kernel.protocol.atomic import write_atomic
from ipytui.kernel.protocol.paths import locks_dir
from ipytui.kernel.supervisor.lock_writer import LockWriter


@dataclass
class KernelLock:
    """What a lock file records about one running kernel."""

    kernel_id: str
    pid: int
    host: str
    started: float
    connection_file: str
    checkpoint: str = ""
    journal_session: int = 0
    clients: int = 0  # connected peers, kept current by the supervisor
    activity: str = "idle"  # idle or busy
    owns_connection_file: bool = False  # whoever cleans up after the kernel removes the file
    launched_by: str = "user"  # "manager": a Jupyter kernel manager (the kernelspec path)
    alone_since: float = 0.0  # wall time since when no client is attached (0: some are)
    cull_after: float = 0.0  # seconds without clients before the kernel culls itself (0: never)
    ended: str = ""  # "culled": it stopped itself, its checkpoint kept for `ipytui recover`

    @property
    def path(self) -> Path:
        return locks_dir() / f"{self.kernel_id}.lock"

    def data(self) -> bytes:
        """The file's contents now."""
        return json.dumps(asdict(self)).encode()

    def write(self) -> Path:
        """Replace the file atomically; on a disk error nothing is left half-written."""
        data = self.data()
        return write_atomic(self.path, lambda f: f.write(data))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_alive(self) -> bool:
        """True while the supervisor process still runs (always True for other hosts)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _same_process(self.pid, self.started)


class LockKeeper:
    """Keeps a running kernel's lock current (clients, activity) for ``ipytui list``.

    Rewritten at most every ``REFRESH`` seconds: a fast client flips busy and
    idle a thousand times a second, and a file per flip would cost more than
    the cells themselves. The rewrites run on a thread (supervisor/lock_writer.py:
    a rename can wait on the disk for tens of ms, and the loop must not). A
    failed rewrite (a full disk) is reported to ``on_error`` (on that thread)
    and tried again ``RETRY`` seconds later; the kernel carries on.
    """

    REFRESH = 0.5
    RETRY = 5.0

    def __init__(
        self,
        lock: KernelLock,
        on_error: Callable[[OSError], None] | None = None,
        on_ok: Callable[[], None] | None = None,
    ) -> None:
        self.lock = lock
        self.on_error = on_error or (lambda exc: None)
        self.on_ok = on_ok or (lambda: None)
        self.written_at = 0.0  # monotonic time of the last rewrite (or failed try)
        self.stale = False  # the file lags behind the clients/activity
        self.failing = False  # the last rewrite failed: wait RETRY before the next
        self.writer = LockWriter(lambda: lock.path, self._written)

    def write_now(self) -> None:
        """Rewrite the file now, on this thread (the first write, before any cell);
        a disk error is reported, not raised."""
        self.written_at = time.monotonic()
        try:
            self.lock.write()
        except OSError as exc:
            self._written(exc)
            return
        self._written(None)

    def write_soon(self) -> None:
        """Hand the current contents to the writer thread; never waits on the disk."""
        self.written_at = time.monotonic()
        self.stale = False
        self.writer.submit(self.lock.data())

    def close(self) -> None:
        """Let the last handed-over version land, then stop the writer (at the end,
        before the lock is removed or marked: no late write may bring it back)."""
        if not self.writer.close():
            self.on_error(OSError("the lock file writer did not finish in time"))

    def _written(self, error: OSError | None) -> None:
        """The outcome of a rewrite (on the writer thread, or at the first write)."""
        if error is not None:
            self.failing = self.stale = True
            self.on_error(error)
            return
        self.failing = False
        self.on_ok()

    def update(self, clients: int, activity: str) -> None:
        """Note the current facts; rewrite the file if it is stale and due."""
        lock = self.lock
        self.stale = self.failing or (clients, activity) != (lock.clients, lock.activity)
        if self.stale and time.monotonic() - self.written_at >= self._interval():
            if clients == 0 and (lock.clients or not lock.alone_since):
                lock.alone_since = time.time()
            elif clients:
                lock.alone_since = 0.0
            lock.clients, lock.activity = clients, activity
            self.write_soon()

    def _interval(self) -> float:
        return self.RETRY if self.failing else self.REFRESH

    def due_ms(self) -> int:
        """A poll timeout: 1 s, or sooner when a rewrite is waiting."""
        if not self.stale:
            return 1000
        left = self.written_at + self._interval() - time.monotonic()
        return max(1, min(1000, int(left * 1000) + 1))


def _same_process(pid: int, started: float) -> bool:
    """Guard against pid reuse: the process must not be younger than the lock."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        proc_stat = Path("/proc/stat").read_text().splitlines()
        boot = float(next(line for line in proc_stat if line.startswith("btime")).split()[1])
        return boot + ticks / os.sysconf("SC_CLK_TCK") <= started + 5
    except (OSError, ValueError, StopIteration, IndexError):
        return True


def new_lock(
    kernel_id: str,
    connection_file: str,
    checkpoint: str = "",
    *,
    owns_connection_file: bool = False,
    launched_by: str = "user",
    cull_after: float = 0.0,
) -> KernelLock:
    started = time.time()
    return KernelLock(
        kernel_id=kernel_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        started=started,
        connection_file=connection_file,
        checkpoint=checkpoint,
        owns_connection_file=owns_connection_file,
        launched_by=launched_by,
        alone_since=started,
        cull_after=cull_after,
    )


def read_locks() -> list[KernelLock]:
    """Every readable lock file, newest first."""
    locks = []
    for path in locks_dir().glob("*.lock"):
        try:
            data = json.loads(path.read_text())
            known = {k: v for k, v in data.items() if k in KernelLock.__dataclass_fields__}
            locks.append(KernelLock(**known))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(locks, key=lambda lock: lock.started, reverse=True)


def stale_locks() -> list[KernelLock]:
    return [lock for lock in read_locks() if not lock.is_alive()]
