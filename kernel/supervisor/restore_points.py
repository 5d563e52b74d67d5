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

A cell the worker could log instead (worker/replayable.py: no user code, so a
replay repeats it exactly) takes no point: it is kept as a ``Logged`` entry of
the newest point, and the state after it is that point plus the logged cells
up to it, replayed in the woken point (worker/replay.py). Such a state is an
undo target like a point's own, and holds no memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.procs import private_bytes
from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.protocol.syntax import timeline_names

TIMELINE_GONE = 20  # lines of dropped points remembered for %timeline
MEASURE_SLACK = 16 * 2**20  # worker faults (bytes) that make the chain measured again, at least
MEASURE_EVERY = 1.0  # seconds: measured at least this often while points are added


@dataclass(frozen=True)
class Logged:
    """A cell logged after a point instead of forking one: replayed on a restore."""

    count: int
    code: str
    user: str = ""
    taken: float = field(default_factory=time.time)


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
    replay: list[Logged] = field(default_factory=list)  # the cells logged after it, in order

    @property
    def last(self) -> int:
        """The cell whose state this point holds once its logged cells are replayed."""
        return self.replay[-1].count if self.replay else self.count

    def names(self) -> list[str]:
        """The names its cell may have changed (at most 20), read from the code when first
        asked: a timeline is drawn far less often than cells run."""
        if self.code:
            self.changed, self.code = timeline_names(self.code), ""
        return self.changed


@dataclass(frozen=True)
class Target:
    """A state an undo can go back to: a point, plus the logged cells it replays."""

    count: int  # the state after this cell
    point: RestorePoint
    replay: tuple[Logged, ...] = ()


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
        if self.points:  # a point taken after logged cells holds their state itself
            before = self.points[-1]
            before.replay = [e for e in before.replay if e.count < point.count]
        self.points.append(point)
        return self.trim()

    def trim(self) -> list[int]:
        """Drop the oldest points beyond the depth, then while over the budget."""
        dropped: list[int] = []
        # The oldest point goes once the states after it are enough for the depth: a
        # point with cells logged after it stays while one of them is in reach.
        while len(self.points) > 1 and sum(
            1 + len(p.replay) for p in self.points[1:]
        ) > self.undo_depth:
            dropped.append(self._drop(0, f"more than undo_depth={self.undo_depth} states kept"))
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
        logged = "".join(f", [{entry.count}]" for entry in point.replay)
        which = f"cells [{point.count}]{logged} were" if logged else f"cell [{point.count}] was"
        self.forget(f"the state after {which} dropped: {why}")
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

    def log(self, point_pid: int, logged: Logged) -> bool:
        """A cell logged after the newest point (the worker names it); False if that
        point is not the newest kept one (dropped, killed): the cell is unprotected."""
        newest = self.newest
        if newest is None or newest.pid != point_pid or logged.count <= newest.last:
            return False
        newest.replay.append(logged)
        return True

    def states(self) -> list[Target]:
        """Every state the chain can bring back, oldest first."""
        return [
            Target(c, p, tuple(p.replay[:i]))
            for p in self.points
            for i, c in enumerate([p.count, *(entry.count for entry in p.replay)])
        ]

    def undo_targets(self, state_count: int) -> list[Target]:
        """The states before the current one (after cell ``state_count``), oldest first:
        at most ``undo_depth`` of them."""
        older = [t for t in self.states() if t.count < state_count]
        return older[-self.undo_depth:] if self.undo_depth > 0 else []

    def timeline(self, state_count: int, measure: bool = True) -> dict[str, Any]:
        """The %timeline content: kept points, which are undo targets, and the dropped
        (``measure=False``: what each point held when last measured, at its trim)."""
        if measure:
            self.measure()
        steps = {t.count: i for i, t in enumerate(reversed(self.undo_targets(state_count)), 1)}
        rows = []
        for point in self.points:
            rows.append(
                {
                    "count": point.count,
                    "user": point.user,
                    "changed": point.names(),
                    "taken": point.taken,
                    "held": point.held,
                    "on_disk": point.on_disk,
                    "spill": point.spill,
                    "undo_steps": steps.get(point.count, 0),
                    "current": point.count >= state_count,
                }
            )
            rows.extend(
                {
                    "count": entry.count,
                    "user": entry.user,
                    "changed": timeline_names(entry.code),
                    "taken": entry.taken,
                    "held": 0,
                    "on_disk": 0,
                    "spill": f"logged: replayed on the state after cell [{point.count}]",
                    "logged": True,
                    "undo_steps": steps.get(entry.count, 0),
                    "current": entry.count >= state_count,
                }
                for entry in point.replay
            )
        # A point older than the depth stays while cells logged after it need it.
        past = [
            f"the state after {'logged ' if row.get('logged') else ''}cell [{row['count']}] "
            f"is older than the {self.undo_depth} states undo_depth keeps"
            + ("" if row.get("logged") else
               " (kept as the base the cells logged after it replay on)")
            for row in rows
            if not row["undo_steps"] and row["count"] < state_count
        ]
        return {
            "points": rows,
            "gone": [*self.gone, *past],
            "held": self.held(),
            "on_disk": self.on_disk(),
            "budget": self.budget,
            "undo_depth": self.undo_depth,
            "available": len(steps),
            "state_count": state_count,
        }

    def kill_all(self) -> None:
        for pid in [*self.drop_all("the kernel stopped"), *self.drop_aside()]:
            procs.kill_snapshot(pid)
