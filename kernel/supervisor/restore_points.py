"""The chain of kept restore points: waiting fork snapshots, oldest first.

The newest point is the crash-restore point; the older ones are what
``%undo`` goes back to. Copy-on-write copies a page at most once per
snapshot, so a chain costs the memory that diverged since each point was
taken, not a full copy per point: the chain is trimmed to ``undo_depth``
undo targets and to the shared memory budget, oldest first, and every point
dropped leaves a line saying which cell can no longer be undone and why.

Measuring a point walks its page tables (smaps_rollup: milliseconds for a big
process), so a chain is not re-measured after every cell. A point's private
pages grow only where the worker copies a page it shares with it, one minor
fault each: the worker's faults since the last measure bound that growth, and
the chain is measured again when they could matter (a sixteenth of the budget,
at least ``MEASURE_SLACK`` bytes, or the budget within reach) or
``MEASURE_EVERY`` seconds have passed. A bulk copy right after a fork
(worker/point_copy.py) is counted with the faults: the snapshot event says
how many bytes it copied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.procs import private_bytes
from ipytui.kernel.protocol.sizes import format_size

TIMELINE_GONE = 20  # lines of dropped points remembered for %timeline
MEASURE_SLACK = 16 * 2**20  # worker faults (bytes) that make the chain measured again, at least
MEASURE_EVERY = 1.0  # seconds: measured at least this often while points are added


@dataclass
class RestorePoint:
    """One waiting snapshot: the state after cell ``count``."""

    pid: int
    count: int
    user: str = ""
    changed: list[str] = field(default_factory=list)
    code: str = ""  # the cell's code, until ``names`` reads the names it changed from it
    taken: float = field(default_factory=time.time)
    held: int = 0  # bytes only this point keeps alive (its private pages), last measured
    on_disk: int = 0  # bytes of its big buffers it spilled to disk (worker/spill.py)
    spill: str = ""  # what its spill did, in words ("" while none was tried)

    def names(self) -> list[str]:
        """The names its cell may have changed (at most 20), read from the code when first
        asked: a timeline is drawn far less often than cells run."""
        if self.code:
            from ipytui.kernel.protocol.syntax import timeline_names

            self.changed, self.code = timeline_names(self.code), ""
        return self.changed


class RestoreChain:
    """The kept points and the lines about the dropped ones (see the module docstring)."""

    def __init__(self, undo_depth: int, budget: int) -> None:
        self.undo_depth = undo_depth
        self.budget = budget
        self.points: list[RestorePoint] = []
        self.aside: list[RestorePoint] = []  # newer than an undo's target, until it is decided
        self.gone: list[str] = []  # "cell [4]: dropped, over the memory budget (...)"
        self.unmeasured = 0  # bytes of worker faults since the last measure: held's bound
        self.measured_at = 0.0  # time.monotonic() of the last measure

    @property
    def newest(self) -> RestorePoint | None:
        return self.points[-1] if self.points else None

    def pids(self) -> set[int]:
        return {p.pid for p in self.points}

    def add(self, point: RestorePoint) -> list[int]:
        """Keep a new newest point; returns the pids to kill to stay within depth and budget."""
        self.points = [p for p in self.points if p.pid != point.pid]
        self.points.append(point)
        return self.trim()

    def trim(self) -> list[int]:
        """Drop the oldest points beyond the depth, then while over the budget."""
        dropped: list[int] = []
        while len(self.points) > self.undo_depth + 1:
            dropped.append(self._drop(0, f"more than undo_depth={self.undo_depth} points kept"))
        self.measure_if_unsure()
        while len(self.points) > 1 and self.held() > self.budget:
            why = (
                f"the kept points held {format_size(self.held())}, over the "
                f"{format_size(self.budget)} snapshot budget"
            )
            dropped.append(self._drop(0, why))
            self.measure()
        return dropped

    def _drop(self, index: int, why: str) -> int:
        point = self.points.pop(index)
        self.forget(f"the state after cell [{point.count}] was dropped: {why}")
        return point.pid

    def forget(self, line: str) -> None:
        self.gone = [*self.gone, line][-TIMELINE_GONE:]

    def measure(self) -> None:
        """Refresh how much each point holds (smaps_rollup: one read per point)."""
        for point in self.points:
            point.held = private_bytes(point.pid)
        self.unmeasured, self.measured_at = 0, time.monotonic()

    def note_faults(self, faults: int) -> None:
        """The worker's cell faulted ``faults`` bytes of pages (copies and new pages)."""
        self.unmeasured += max(0, faults)

    def measure_if_unsure(self) -> None:
        """Measure when the points may have grown enough to matter (module docstring)."""
        if (self.unmeasured >= max(MEASURE_SLACK, self.budget // 16)
                or self.held() + self.unmeasured > self.budget
                or time.monotonic() - self.measured_at >= MEASURE_EVERY):
            self.measure()

    def held(self) -> int:
        return sum(p.held for p in self.points)

    def on_disk(self) -> int:
        """Disk the kept points' spill files take (RAM is ``held``: counted apart)."""
        return sum(p.on_disk for p in self.points)

    def find(self, pid: int) -> RestorePoint | None:
        return next((p for p in self.points if p.pid == pid), None)

    def take(self, pid: int) -> RestorePoint | None:
        """Remove and return the point of ``pid`` (it is being promoted)."""
        for i, point in enumerate(self.points):
            if point.pid == pid:
                return self.points.pop(i)
        return None

    def set_aside(self, count: int) -> None:
        """Take out the points after cell ``count`` (an undo goes before them), alive:
        ``put_back`` keeps them again if the undo fails, ``drop_aside`` ends them."""
        self.aside = [*self.aside, *(p for p in self.points if p.count > count)]
        self.points = [p for p in self.points if p.count <= count]

    def put_back(self, count: int) -> list[int]:
        """After a failed undo to the state after cell ``count``: the points set aside
        are kept again; returns the pids of the points taken since from ``count`` on."""
        since = [p.pid for p in self.points if p.count >= count]
        self.points = [p for p in self.points if p.count < count] + self.aside
        self.aside = []
        return since

    def drop_aside(self) -> list[int]:
        """The undo succeeded: the pids of the points set aside, to kill."""
        pids, self.aside = [p.pid for p in self.aside], []
        return pids

    def drop_all(self, why: str) -> list[int]:
        """Remove every point (protection switched off, or a restart without restore)."""
        pids = [p.pid for p in self.points]
        if self.points:
            self.forget(f"cells up to [{self.points[-1].count}]: {why}")
        self.points = []
        return pids

    def undo_targets(self, state_count: int) -> list[RestorePoint]:
        """Points older than the current state (after cell ``state_count``), oldest first."""
        return [p for p in self.points if p.count < state_count]

    def timeline(self, state_count: int, measure: bool = True) -> dict[str, Any]:
        """The %timeline content: kept points, which are undo targets, and the dropped
        (``measure=False``: what each point held when last measured, at its trim)."""
        if measure:
            self.measure()
        targets = self.undo_targets(state_count)
        rows = []
        for point in self.points:
            steps = len(targets) - targets.index(point) if point in targets else 0
            rows.append(
                {
                    "count": point.count,
                    "user": point.user,
                    "changed": point.names(),
                    "taken": point.taken,
                    "held": point.held,
                    "on_disk": point.on_disk,
                    "spill": point.spill,
                    "undo_steps": steps,
                }
            )
        return {
            "points": rows,
            "gone": list(self.gone),
            "held": self.held(),
            "on_disk": self.on_disk(),
            "budget": self.budget,
            "undo_depth": self.undo_depth,
            "available": len(targets),
            "state_count": state_count,
        }

    def kill_all(self) -> None:
        for pid in [*self.drop_all("the kernel stopped"), *self.drop_aside()]:
            procs.kill_snapshot(pid)
