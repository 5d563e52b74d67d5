"""The protection level: when the worker takes its restore points, and why.

Copy-on-write copies a page at most once per snapshot. So the price of a
snapshot is paid by the first cells that write after it, once per page:
small for cells that touch little memory, as large as the array for a cell
that rewrites a big array in place. This module measures that price after
every state-changing cell (minor page faults as a cheap first look, then the
newest snapshot's private pages from smaps_rollup) and picks the level:

- ``cell``: a restore point after each state-changing cell (undo per cell);
- ``idle``: one once the kernel has been idle ``idle_seconds``, so
  back-to-back big cells pay once; the restore point may be a few cells old;
- ``checkpoint``: no live restore point; a pickle checkpoint written by a
  short-lived child at idle (a crash brings back what pickles; no undo);
- ``off``: none (a crash starts from the last checkpoint or empty).

``auto`` starts at ``cell``, moves to ``idle`` when the first cell after a
snapshot copied ``copy_limit`` or more (or the snapshot spills that much to
disk: its big buffers, worker/spill.py, written again by every new point),
and back when such a cell copied less than a quarter of it and nothing big
is spilled; to ``checkpoint`` when that first cell copied more
than the whole snapshot budget (one restore point would not fit), and back to
``idle`` once the worker's resident memory is under half the budget. Every
change is announced; nothing changes silently.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol.procs import private_bytes
from ipytui.kernel.protocol.sizes import format_size

PAGE = os.sysconf("SC_PAGE_SIZE")
SETTINGS = ("auto", "cell", "idle", "checkpoint", "off")


def _resident() -> int:
    """This process's resident bytes (statm)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass
class CellCost:
    """What one cell cost its restore point."""

    count: int
    seconds: float
    faults: int  # bytes of minor page faults (new pages and copies alike)
    copied: int  # bytes the newest snapshot had to keep because this cell wrote them


@dataclass
class Protection:
    """The level the worker applies, its measurements and its notices."""

    setting: str = "auto"
    copy_limit: int = 64 * 2**20
    budget: int = 2**30
    undo_depth: int = 3  # the undo targets kept: with the newest, depth + 1 points
    idle_seconds: float = 2.0
    level: str = "cell"
    reason: str = "the default: a restore point after each state-changing cell"
    snapshot_pid: int = 0  # the newest restore point this worker took
    snapshot_count: int = 0
    snapshot_time: float = 0.0
    fresh: bool = False  # no cell has run since the newest snapshot
    held: int = 0  # the newest snapshot's private bytes at the last measure
    spill_threshold: int = 0  # the snapshots spill mappings this big (0: they never do)
    spills: int = 0  # what the newest snapshot spills to disk (its big mappings at the fork)
    worker_mapped: int = 0  # the worker's mappings of deleted spill files (disk it holds)
    big: list[tuple[int, int]] = field(default_factory=list)  # big anonymous mappings now
    maps_due: bool = True  # /proc/self/maps must be read at the next point (a promotion)
    due: tuple[int, str, dict[str, Any]] | None = None  # (count, msg_id, cell) awaiting idle
    last: CellCost | None = None
    _start: tuple[float, int] = (0.0, 0)
    notices: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Protection:
        setting = config.get("protection", "auto")
        if not config.get("snapshots", True):
            setting = "off"
        prot = cls(setting=setting if setting in SETTINGS else "auto",
                   copy_limit=int(config.get("copy_limit") or cls.copy_limit),
                   budget=int(config.get("snapshot_budget") or cls.budget),
                   undo_depth=int(config.get("undo_depth", cls.undo_depth)),
                   idle_seconds=float(config.get("idle_seconds", cls.idle_seconds)),
                   spill_threshold=int(config.get("spill_threshold", 128 * 2**20))
                   if config.get("checkpoint_path") else 0)
        if prot.setting != "auto":
            prot.level = prot.setting
            prot.reason = "chosen in the kernel's settings"
        return prot

    # -- measuring ------------------------------------------------------------
    def cell_started(self) -> None:
        self._start = (time.perf_counter(), _minflt())

    def cell_finished(self, count: int) -> CellCost:
        """Measure the cell that just ended (smaps_rollup is read only when faults say so)."""
        began, faults = self._start
        cost = CellCost(count, time.perf_counter() - began, (_minflt() - faults) * PAGE, 0)
        if self.snapshot_pid and cost.faults >= self.copy_limit // 4:
            held = private_bytes(self.snapshot_pid)
            cost.copied, self.held = max(0, held - self.held), held
        elif self.snapshot_pid:
            cost.copied = cost.faults  # an upper bound: no more can have been copied
        self.last = cost
        return cost

    # -- deciding -------------------------------------------------------------
    def decide(self, cost: CellCost, changed: bool) -> list[str]:
        """Update the level after a cell; returns the notices to show under the cell."""
        notes: list[str] = []
        first = self.fresh
        if changed:
            self.fresh = False
        if cost.copied > self.budget and self.snapshot_pid:
            notes.append(f"Cell [{cost.count}] is not undoable: the restore point before it now "
                         f"holds {format_size(cost.copied)}, over the {format_size(self.budget)} "
                         "snapshot budget, so it is dropped at the next restore point.")
        if self.setting == "auto" and first and changed and cost.copied > self.budget:
            notes.append(self._set("checkpoint", (
                f"cell [{cost.count}] copied {format_size(cost.copied)} for its restore point, "
                f"over the whole {format_size(self.budget)} snapshot budget; no live restore "
                "point is kept, only a pickle checkpoint written at idle (no undo, and a crash "
                "brings back only what pickles)")))
        elif self.setting == "auto" and self.level == "checkpoint" and changed:
            resident = _resident()
            if resident < self.budget // 2:
                notes.append(self._set("idle", (
                    f"the worker holds {format_size(resident)}, under half the budget; "
                    "live restore points again, taken at idle")))
        elif self.setting == "auto" and first and changed:
            if self.level == "cell" and cost.copied + self.spills >= self.copy_limit:
                spilled = (f" and its restore point spills {format_size(self.spills)} to disk"
                           if self.spills else "")
                notes.append(self._set("idle", (
                    f"cell [{cost.count}] copied {format_size(cost.copied)} for its restore "
                    f"point{spilled} (limit {format_size(self.copy_limit)}); restore points are now taken "
                    f"once the kernel has been idle {self.idle_seconds:g} s, so a crash or "
                    "%undo goes back to the last idle moment")))
            elif self.level == "idle" and cost.copied + self.spills < self.copy_limit // 4:
                notes.append(self._set("cell", (
                    f"cell [{cost.count}] copied only {format_size(cost.copied)} for its restore "
                    "point; a restore point after each cell again")))
        return notes

    def choose(self, setting: str) -> str:
        """The user's choice (``%protection``); returns the notice."""
        self.setting = setting
        if setting == "auto":
            level = self.level if self.level in ("cell", "idle", "checkpoint") else "cell"
            return self._set(level, "auto chosen by hand: it adapts from here")
        return self._set(setting, f"{setting} chosen by hand")

    def resume(self, setting: str) -> None:
        """A promoted snapshot learns the setting chosen since it was taken."""
        if setting != self.setting:
            self.setting = setting
            if setting != "auto":
                self.level, self.reason = setting, f"{setting} chosen by hand"

    def _set(self, level: str, reason: str) -> str:
        self.level, self.reason = level, reason
        return f"Protection level {level}: {reason}."

    def wants_snapshot_now(self) -> bool:
        return self.level == "cell"

    def waits_for_idle(self) -> bool:
        """Whether the state after a changing cell is saved once the kernel is idle."""
        return self.level in ("idle", "checkpoint")

    def regions_now(self) -> list[tuple[int, int]]:
        """The big mappings a restore point forked now spills (read just before the fork,
        so the point inherits the list), noting what that means for the level."""
        from ipytui.kernel.worker.spill import big_regions, spill_mapped, spillable

        regions: list[tuple[int, int]] = []
        mapped_before, self.spills, self.worker_mapped = self.worker_mapped, 0, 0
        # Under the spill threshold resident, with no lazily promoted spill mapping, the
        # point has next to nothing to spill: the maps (hundreds of lines) are not read.
        if self.spill_threshold and (self.maps_due or mapped_before
                                     or _resident() >= self.spill_threshold):
            mapped = spillable()  # /proc/self/maps read and parsed once for both
            regions = big_regions(self.spill_threshold, mapped)
            self.spills = sum(length for _, length in regions)  # what the new point spills
            self.worker_mapped = sum(hi - lo for lo, hi in spill_mapped(mapped))  # lazy promotion's
        # What a point may copy at once (worker/point_copy.py): never a spill file's mapping.
        self.big = [] if self.worker_mapped else regions
        self.maps_due = False
        if self.setting == "cell" and self.spills * (self.undo_depth + 1) <= self.budget:
            # Level cell chosen by hand: a copy for every kept point fits the budget, so
            # the points keep their copies in RAM. Spilled at each cell, the big buffers
            # would be written again and again, and the cells racing those writes pay
            # for them (at 1 GiB: 2.4x slower in place, 4.5x on small cells). ``auto``
            # spills: it counts the spill as the point's price and moves to ``idle``.
            self.spills = 0
            return []
        return regions

    def took(self, pid: int, count: int) -> None:
        self.snapshot_pid, self.snapshot_count = pid, count
        self.snapshot_time, self.fresh, self.held, self.due = time.time(), True, 0, None

    def dropped(self) -> None:
        self.snapshot_pid, self.snapshot_count, self.fresh, self.held = 0, 0, False, 0
        self.spills = 0

    def info(self) -> dict[str, Any]:
        """The facts the supervisor shows in kernel_info and the status pane."""
        last = self.last
        return {"setting": self.setting, "level": self.level, "reason": self.reason,
                "copy_limit": self.copy_limit, "budget": self.budget,
                "idle_seconds": self.idle_seconds, "spills": self.spills,
                "worker_mapped": self.worker_mapped,
                "last_cell": None if last is None else {
                    "count": last.count, "seconds": round(last.seconds, 4),
                    "faults": last.faults, "copied": last.copied}}
