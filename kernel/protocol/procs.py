"""Process helpers every side uses: reaping, killing, finding waiting snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

SNAPSHOT_NAME = b"ipytui-snapshot"  # a waiting snapshot's process name (worker/snapshots.py)
FALLBACK_NAME = b"ipytui-fallback"  # an undo's fallback (worker/undo_fallback.py): never a point


def kernel_id_from(connection_file: Path) -> str:
    """kernel-abc123.json → abc123 (Jupyter's naming), else the file's stem."""
    stem = connection_file.stem
    return stem[len("kernel-") :] if stem.startswith("kernel-") else stem


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


def signal_exact(pidfd: int, pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process ``pidfd`` refers to, never to whoever took its pid
    after it was reaped (pids wrap quickly where every cell forks); by ``pid`` only
    when there is no descriptor."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        elif pid:
            os.kill(pid, sig)


def kill_snapshot(pid: int) -> None:
    """SIGKILL a restore point, never whoever took its pid since.

    A point can die and be reaped by its worker while the supervisor still lists
    it, and pids wrap quickly where every cell forks (pid_max is often 32768):
    only a process that carries the snapshot's name is killed.
    """
    kill_named(pid, SNAPSHOT_NAME)


def kill_named(pid: int, name: bytes) -> None:
    """SIGKILL ``pid`` only while its process name is ``name`` (see kill_snapshot)."""
    if has_name(pid, name):
        kill(pid)


def has_name(pid: int, name: bytes) -> bool:
    """Whether ``pid`` lives and its process name (/proc/PID/comm) is ``name``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        found, rest = stat.split(b"(", 1)[1].rsplit(b")", 1)
    except (OSError, IndexError, ValueError):
        return False
    return found == name and rest.split()[:1] not in ([b"Z"], [b"X"])


def is_snapshot(pid: int, checkpoint_path: str | None = None) -> bool:
    """Whether ``pid`` is a live process named as a waiting restore point (of the
    kernel whose checkpoint is ``checkpoint_path``, when given)."""
    if not has_name(pid, SNAPSHOT_NAME):
        return False
    return checkpoint_path is None or _of_kernel(pid, checkpoint_path)


def _of_kernel(pid: int, checkpoint_path: str) -> bool:
    """Whether ``pid`` is a process of the kernel of ``checkpoint_path``: the worker's
    environment names it."""
    needle = f'"checkpoint_path": {json.dumps(str(checkpoint_path))}'.encode()
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


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


def private_bytes(pid: int) -> int:
    """Pages only ``pid`` maps (Private_Clean + Private_Dirty in smaps_rollup); 0 if gone.

    For a waiting snapshot: the pages the worker has rewritten since the fork,
    which the snapshot alone now keeps alive.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    return sum(
        int(line.split()[1]) * 1024
        for line in lines
        if line.startswith((b"Private_Clean:", b"Private_Dirty:"))
    )


def waiting_snapshots() -> list[int]:
    """Snapshots re-parented to us (a subreaper) by a dead worker, oldest first.

    A worker announces each snapshot on its pipe, but one that dies right
    after forking (the next queued cell crashes at once) can take that
    message with it. Its orphaned snapshot is still ours: a live child that
    carries the snapshot's process name.
    """
    me = os.getpid()
    return [pid for _, pid, parent in _live_snapshots() if parent == me]


def snapshots_of(checkpoint_path: str) -> list[int]:
    """Live snapshot processes of the kernel whose checkpoint is ``checkpoint_path``,
    oldest first, whoever their parent is now (they outlive a killed kernel for a moment
    to write its checkpoint). Told apart by the worker's environment, which names it."""
    return [pid for _, pid, _parent in _live_snapshots() if _of_kernel(pid, checkpoint_path)]


def _live_snapshots() -> list[tuple[int, int, int]]:
    """(start time, pid, parent pid) of every live process named as a snapshot, oldest first."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            name, rest = stat.split(b"(", 1)[1].rsplit(b")", 1)
            fields = rest.split()
            if name == SNAPSHOT_NAME and fields[0] not in (b"Z", b"X"):
                found.append((int(fields[19]), int(entry), int(fields[1])))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)
