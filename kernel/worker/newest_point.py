"""Which restore point is the newest, known to every point without scanning /proc.

Only the newest waiting point writes the pickle checkpoint: an older one would
overwrite a later state. Each point used to find its younger siblings by reading
every process's ``/proc/PID/stat`` (hundreds on a busy machine, once per point,
so once per cell at level ``cell``). Instead the worker writes the pid of each
point it forks into one shared page that every fork inherits (a promoted point
keeps writing to it as the next worker), and a point reads eight bytes.
"""

from __future__ import annotations

import mmap
import os


class NewestMark:
    """The pid of the newest restore point, in memory shared by the worker's forks."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and shared: survives fork

    def set(self, pid: int) -> None:
        """The worker forked ``pid``: it is the newest point now."""
        self._page[:8] = pid.to_bytes(8, "little")

    def get(self) -> int:
        """The newest point's pid, 0 before the first."""
        return int.from_bytes(self._page[:8], "little")

    def is_me(self, checkpoint_path: str) -> bool:
        """In a point: whether no younger point of this kernel lives (it holds a later
        state: an older one must not overwrite its checkpoint)."""
        from ipytui.kernel.protocol.procs import is_snapshot, snapshots_of

        marked = self.get()
        if marked == os.getpid():
            return True
        if marked and is_snapshot(marked, checkpoint_path):  # a younger point lives
            return False
        siblings = snapshots_of(checkpoint_path)  # the mark is stale: ask /proc
        return not siblings or siblings[-1] == os.getpid()
