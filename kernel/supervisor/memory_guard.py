"""The memory guard: end a runaway worker before the machine starts swapping.

No cgroup is needed: the supervisor reads the worker's resident size from
/proc/PID/statm (one small read) every ``POLL_MS`` and adds what the kept
restore points hold on their own (their private pages, re-read at most every
``HELD_EVERY`` seconds, because only the worker's writes make them grow).
Past the limit the worker gets SIGKILL and the normal crash path restores
the last restore point; the crashed cell's error names the limit.
"""

from __future__ import annotations

import os
import time

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.supervisor.restore_points import RestoreChain

POLL_MS = 100
HELD_EVERY = 1.0


def statm_rss(pid: int) -> int:
    """Resident bytes of ``pid`` (0 if gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryGuard:
    """Checks the worker and its restore points against ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._next = 0.0
        self._held_at = 0.0
        self._held = 0
        self.peak = 0

    @property
    def cause(self) -> str:
        return f"the worker passed its memory limit ({format_size(self.limit)})"

    def due_ms(self) -> int:
        return max(0, int((self._next - time.monotonic()) * 1000))

    def check(self, worker_pid: int, chain: RestoreChain, pidfd: int = -1) -> bool:
        """True when the worker was killed for passing the limit (at most every POLL_MS)."""
        now = time.monotonic()
        if not worker_pid or now < self._next:
            return False
        self._next = now + POLL_MS / 1000
        if now - self._held_at >= HELD_EVERY:
            chain.measure()
            self._held, self._held_at = chain.held(), now
        used = statm_rss(worker_pid) + self._held
        self.peak = max(self.peak, used)
        if used <= self.limit:
            return False
        procs.signal_exact(pidfd, worker_pid)
        return True

    def used(self, worker_pid: int, chain: RestoreChain) -> int:
        """The worker's resident bytes plus what the kept points hold, now."""
        chain.measure()
        return statm_rss(worker_pid) + chain.held()
