"""The supervisor's side of protection: the restore-point chain, ``%undo``,
``%timeline``, the level the worker reports, and the memory guard.

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (its state is
the supervisor's). The undo itself (choosing the point, waking it in time,
falling back) is the ``Undo`` mixin's (supervisor/undo.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.atomic import remove_tmp
from ipytui.kernel.protocol.protection_settings import ProtectionSettings
from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.protocol.spill_files import remove_spill
from ipytui.kernel.supervisor.inflight import Pending, WorkerState, is_shell_execute
from ipytui.kernel.supervisor.memory_guard import MemoryGuard
from ipytui.kernel.supervisor.restore_points import Logged, RestoreChain, RestorePoint
from ipytui.kernel.supervisor.undo import UNDO_MIME, Undo, UndoPlan

__all__ = ["UNDO_MIME", "TimeTravel"]  # UNDO_MIME: the undo entry's type, as before

log = logging.getLogger("ipytui.supervisor")

MAX_CHANGED = 1000  # state-changing cell counts remembered


class TimeTravel(Undo):
    """Restore points, undo, timeline and the memory guard (see the module docstring)."""

    settings: ProtectionSettings
    checkpoint_path: Path
    worker: WorkerState
    inflight: dict[str, Pending]
    link: Any
    chain: RestoreChain
    guard: MemoryGuard
    protection: dict[str, Any]
    changed_cells: list[int]
    changed_ids: dict[int, str]
    undo_plan: UndoPlan | None
    zombies: list[int]
    timeline_due: bool  # the points or the cells they cover changed: tell the clients
    early_spills: dict[int, dict[str, Any]]  # spill notes of points not announced yet
    presence: Any
    announce: Callable[..., dict[str, Any]]

    def init_time_travel(self, settings: ProtectionSettings) -> None:
        """The supervisor's protection state, from the kernel's settings."""
        self.settings = settings
        self.chain = RestoreChain(settings.undo_depth, settings.snapshot_budget)
        self.guard = MemoryGuard(settings.memory_limit)
        level = "cell" if settings.protection == "auto" else settings.protection
        self.protection = {
            "setting": settings.protection,
            "level": level,
        }  # the worker's word follows
        self.changed_cells = []
        self.changed_ids: dict[int, str] = {}  # state-changing cell -> its execute's msg_id
        self.undo_plan = None
        self.zombies = []
        self.timeline_due = False
        self.early_spills = {}

    # -- events from the worker ---------------------------------------------
    def _on_snapshot(self, event: dict[str, Any]) -> None:
        # The names the cell changed are read from its code when a timeline asks (the
        # worker would pay for it on every cell, before its reply).
        msg_id, replied = str(event.get("msg_id", "")), self.worker.replied
        cell = replied if replied is not None and replied.msg.msg_id == msg_id else self.inflight.get(msg_id)
        code = cell.msg.content.get("code") if cell is not None and "changed" not in event else ""
        point = RestorePoint(
            pid=int(event["pid"]),
            count=int(event.get("execution_count", 0)),
            user=str(event.get("user", "")),
            changed=[str(n) for n in event.get("changed", [])][:20],
            code=code if isinstance(code, str) else "",
        )
        self.worker.snapshot_pid, self.worker.snapshot_count = point.pid, point.count
        self.worker.notes = [
            f"thread {name!r} did not survive fork()" for name in event.get("lost_threads", [])
        ]
        # A bulk copy right after the fork (worker/point_copy.py) left the point holding
        # that buffer alone: counted with the faults that bound what the chain holds.
        self.chain.note_faults(int(event.get("copied") or 0))
        self._discard(self.chain.add(point))
        self.timeline_due = True
        early = self.early_spills.pop(point.pid, None)
        if early is not None:  # the point's spill note overtook this event
            self._on_spill(early)

    def _on_logged(self, event: dict[str, Any]) -> None:
        """A cell logged after the newest point instead of forking one (a replayed one
        after a restore, too): the state after it is an undo target."""
        try:
            count, point = int(event["count"]), int(event.get("point") or 0)
        except (KeyError, TypeError, ValueError):
            return
        code, user = event.get("code"), event.get("user")
        if not isinstance(code, str):
            return
        entry = Logged(count, code, user if isinstance(user, str) else "")
        if not self.chain.log(point, entry):  # its point is gone: a crash would lose it
            log.warning("cell [%d] was logged after a point that is not kept", count)
        if count not in self.changed_cells:  # a replayed cell is part of the state already
            self._on_cell_changed(count, str(event.get("msg_id") or ""))
        self.timeline_due = True

    def _on_replay_failed(self, event: dict[str, Any]) -> None:
        """A logged cell failed when replayed (it should not): the state ends before it."""
        try:
            count = int(event.get("count") or 0)
        except (TypeError, ValueError):
            return
        lost = [c for c in self.changed_cells if c >= count]
        self.changed_cells = [c for c in self.changed_cells if c < count]
        line = f"cells {lost} could not be replayed after a restore: {event.get('why')}"
        self.chain.forget(line)
        log.error(line)
        self.announce("protection", by=None, level=self.protection.get("level", "?"), reason=line)

    def _on_cell_changed(self, count: int, msg_id: str = "") -> None:
        self.changed_cells = [*self.changed_cells, count][-MAX_CHANGED:]
        kept = set(self.changed_cells)
        self.changed_ids = {c: m for c, m in self.changed_ids.items() if c in kept}
        self.changed_ids[count] = msg_id
        self.timeline_due = True

    def arrived(self, pending: Pending) -> Pending:
        """Note what a request's sender could have seen when it arrived: the state, and
        its own executes queued before it (an undo never takes back anything else)."""
        pending.seen = self.state_count()
        if is_shell_execute(pending):
            session = pending.msg.header.get("session")
            pending.sent_before = frozenset(
                p.msg.msg_id
                for p in self.inflight.values()
                if is_shell_execute(p) and p.msg.header.get("session") == session
            )
        return pending

    def _on_protection(self, event: dict[str, Any]) -> None:
        before = self.protection.get("level")
        self.protection = {k: v for k, v in event.items() if k not in ("event", "drop")}
        level = self.protection.get("level")
        if level and level != before:  # a shared event: every client sees the level change
            running = next(
                (
                    p
                    for p in self.inflight.values()
                    if p.started and p.msg.msg_type == "execute_request"
                ),
                None,
            )
            self.announce(
                "protection",
                by=running.msg if running else None,
                level=level,
                reason=str(self.protection.get("reason") or ""),
            )
        if event.get("drop"):
            level = event.get("level")
            why = (
                "protection was switched off"
                if level == "off"
                else f"protection level {level} keeps no live restore point"
            )
            self._discard(self.chain.drop_all(why))
            self.worker.snapshot_pid = self.worker.snapshot_count = 0

    def _on_spill(self, event: dict[str, Any]) -> None:
        """A point spilled its big buffers to disk, or could not (and keeps them in RAM)."""
        point = self.chain.find(int(event.get("pid") or 0))
        size = format_size(int(event.get("bytes") or 0))
        if point is None:  # a quick note (a full disk) can overtake the snapshot event
            pid = int(event.get("pid") or 0)
            self.early_spills = {**dict(list(self.early_spills.items())[-7:]), pid: event}
            return
        if event.get("ok"):
            point.on_disk, point.spill = int(event.get("bytes") or 0), f"spilled {size} to disk"
        elif event.get("lost"):
            point.spill = f"lost: its spill of {size} could not be read back ({event.get('why')})"
        else:
            point.spill = f"not spilled ({event.get('why')}): it holds its {size} copy in RAM"
            log.warning("restore point after cell [%d]: %s", point.count, point.spill)

    def _discard(self, pids: list[int]) -> None:
        """Kill dropped restore points; the ones re-parented to us are reaped later."""
        self.timeline_due = self.timeline_due or bool(pids)
        for pid in pids:
            procs.kill_snapshot(pid)
            remove_tmp(self.checkpoint_path, pid)  # killed mid-checkpoint, perhaps
            remove_spill(self.checkpoint_path, pid)
            self.zombies.append(pid)

    def _reap_zombies(self) -> None:
        for pid in list(self.zombies):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # the worker's child: the worker reaps it
            if done:
                self.zombies.remove(pid)

    def state_count(self) -> int:
        """The cell whose state the worker holds (its last state-changing cell)."""
        return self.changed_cells[-1] if self.changed_cells else 0

    def _answer_worker(self, ask: str, content: dict[str, Any]) -> None:
        self.link.send(
            "exec", [b"sup", json.dumps({"cmd": "answer", "ask": ask, **content}).encode()]
        )

    def _on_timeline(self, event: dict[str, Any]) -> None:
        self._answer_worker(str(event.get("ask")), {"timeline": self.timeline_data(measure=True)})

    def timeline_data(self, measure: bool = False) -> dict[str, Any]:
        """%timeline's data: the points, the cells after the newest, the dropped ones,
        and ``changed`` (the state-changing cells since the oldest point: what an undo
        to each point takes back). ``measure``: re-read what each point holds."""
        data = self.chain.timeline(self.state_count(), measure=measure)
        newest, oldest = self.chain.newest, (self.chain.points or [None])[0]
        data["unprotected"] = [c for c in self.changed_cells if newest and c > newest.last]
        data["changed"] = [c for c in self.changed_cells if oldest and c > oldest.count]
        data["level"] = self.protection.get("level", "?")
        return data

    def tell_timeline(self) -> None:
        """One loop turn's changes to the timeline, told to every client at once.

        Only while an ipytui UI is attached (a presence comm is open), as presence
        does for its table: only they draw it, and a plain Jupyter client then
        sees no extra IOPub message per cell (jupyter_kernel_test reads IOPub in
        order). A UI that attaches later reads the timeline from usage_reply.
        """
        if self.timeline_due:
            self.timeline_due = False
            if self.presence.table.comms:
                self.announce("timeline", journal=False, timeline=self.timeline_data())

    # -- memory guard and status ---------------------------------------------
    def _guard_memory(self) -> None:
        """Each loop turn: the memory guard, the undo's wake-up deadline, reaping."""
        self.check_undo_deadline()
        if (
            self.worker.ready
            and not self.worker.killed_for
            and self.guard.check(self.worker.pid, self.chain, self.worker.pidfd)
        ):
            self.worker.killed_for = self.guard.cause
            log.warning("worker %d: %s", self.worker.pid, self.guard.cause)
        self._reap_zombies()

    def protection_status(self) -> dict[str, Any]:
        """kernel_info's ``ipytui.protection``: the level, the restore point, undo depth."""
        newest = self.chain.newest
        state = self.state_count()
        return {
            **self.protection,
            "restore_point": None
            if newest is None
            else {
                "after_cell": newest.last,
                "age_seconds": round(time.time() - newest.taken, 1),
                "cells_after": [c for c in self.changed_cells if c > newest.last],
            },
            "undo_available": len(self.chain.undo_targets(state)),
            "undo_depth": self.chain.undo_depth,
            "held": self.chain.held(),
            "held_text": format_size(self.chain.held()),
            "on_disk": self.chain.on_disk(),
            "on_disk_text": format_size(self.chain.on_disk()),
            "spill": newest.spill if newest is not None else "",
            "memory_limit": self.guard.limit,
            "memory_limit_text": format_size(self.guard.limit),
        }
