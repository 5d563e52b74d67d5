"""The supervisor's side of protection: the restore-point chain, ``%undo``,
``%timeline``, the level the worker reports, and the memory guard.

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (its state is
the supervisor's). An undo is a planned worker death: the worker asks, the
supervisor checks the chain, kills the points newer than the target and the
worker, and wakes the target snapshot in its place; the requests behind the
undo are re-sent to it, and the undo's reply and its entry (attributed to
the client that asked) go to every client once the restored worker is ready.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.atomic import remove_tmp
from ipytui.kernel.protocol.protection_settings import ProtectionSettings
from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.protocol.spill_files import remove_spill
from ipytui.kernel.supervisor.inflight import Pending, WorkerState, for_main_thread
from ipytui.kernel.supervisor.memory_guard import MemoryGuard
from ipytui.kernel.supervisor.restore_points import RestoreChain, RestorePoint
from ipytui.kernel.supervisor.spill_hold import close_later

log = logging.getLogger("ipytui.supervisor")

UNDO_MIME = "application/vnd.ipytui.undo+json"
MAX_CHANGED = 1000  # state-changing cell counts remembered


@dataclass
class UndoPlan:
    """An accepted undo, from the worker's death to the restored worker's hello."""

    pending: Pending | None
    target: RestorePoint
    undone: list[int]
    began: float = field(default_factory=time.monotonic)
    failed: str = ""  # why the target could not be woken, else ""


class TimeTravel:
    """Restore points, undo, timeline and the memory guard (see the module docstring)."""

    settings: ProtectionSettings
    checkpoint_path: Path
    worker: WorkerState
    inflight: dict[str, Pending]
    backlog: list[tuple[str, list[bytes], bool]]
    link: Any
    recorder: Any
    chain: RestoreChain
    guard: MemoryGuard
    protection: dict[str, Any]
    changed_cells: list[int]
    undo_plan: UndoPlan | None
    zombies: list[int]
    timeline_due: bool  # the points or the cells they cover changed: tell the clients
    early_spills: dict[int, dict[str, Any]]  # spill notes of points not announced yet
    presence: Any
    crash_pending: Any
    execution_count: int
    last_ok_count: int
    publish: Callable[..., None]
    _answer: Callable[..., None]
    spawn_worker: Callable[..., None]
    promote_snapshot: Callable[[], bool]
    announce: Callable[..., dict[str, Any]]
    _debug_session_ended: Callable[[], None]

    def init_time_travel(self, settings: ProtectionSettings) -> None:
        """The supervisor's protection state, from the kernel's settings."""
        self.settings = settings
        self.chain = RestoreChain(settings.undo_depth, settings.snapshot_budget)
        self.guard = MemoryGuard(settings.memory_limit)
        level = "cell" if settings.protection == "auto" else settings.protection
        self.protection = {"setting": settings.protection, "level": level}  # the worker's word follows
        self.changed_cells = []
        self.undo_plan = None
        self.zombies = []
        self.timeline_due = False
        self.early_spills = {}

    # -- events from the worker ---------------------------------------------
    def _on_snapshot(self, event: dict[str, Any]) -> None:
        point = RestorePoint(pid=int(event["pid"]), count=int(event.get("execution_count", 0)),
                             user=str(event.get("user", "")),
                             changed=[str(n) for n in event.get("changed", [])][:20])
        self.worker.snapshot_pid, self.worker.snapshot_count = point.pid, point.count
        self.worker.notes = [f"thread {name!r} did not survive fork()"
                             for name in event.get("lost_threads", [])]
        self._discard(self.chain.add(point))
        self.timeline_due = True
        early = self.early_spills.pop(point.pid, None)
        if early is not None:  # the point's spill note overtook this event
            self._on_spill(early)

    def _on_cell_changed(self, count: int) -> None:
        self.changed_cells = [*self.changed_cells, count][-MAX_CHANGED:]
        self.timeline_due = True

    def _on_protection(self, event: dict[str, Any]) -> None:
        before = self.protection.get("level")
        self.protection = {k: v for k, v in event.items() if k not in ("event", "drop")}
        level = self.protection.get("level")
        if level and level != before:  # a shared event: every client sees the level change
            running = next((p for p in self.inflight.values()
                            if p.started and p.msg.msg_type == "execute_request"), None)
            self.announce("protection", by=running.msg if running else None, level=level,
                          reason=str(self.protection.get("reason") or ""))
        if event.get("drop"):
            level = event.get("level")
            why = ("protection was switched off" if level == "off" else
                   f"protection level {level} keeps no live restore point")
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
        self.link.send("exec", [b"sup", json.dumps({"cmd": "answer", "ask": ask, **content}).encode()])

    def _on_timeline(self, event: dict[str, Any]) -> None:
        self._answer_worker(str(event.get("ask")), {"timeline": self.timeline_data(measure=True)})

    def timeline_data(self, measure: bool = False) -> dict[str, Any]:
        """%timeline's data: the points, the cells after the newest, the dropped ones,
        and ``changed`` (the state-changing cells since the oldest point: what an undo
        to each point takes back). ``measure``: re-read what each point holds."""
        data = self.chain.timeline(self.state_count(), measure=measure)
        newest, oldest = self.chain.newest, (self.chain.points or [None])[0]
        data["unprotected"] = [c for c in self.changed_cells if newest and c > newest.count]
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

    # -- undo ----------------------------------------------------------------
    def _on_undo(self, event: dict[str, Any]) -> None:
        ask, steps = str(event.get("ask")), int(event.get("steps") or 1)
        why = self._undo_refusal(steps)
        if why:
            self._answer_worker(ask, {"error": why})
            return
        target = self.chain.undo_targets(self.state_count())[-steps]
        self._discard(self.chain.drop_newer(target.count))
        self.chain.take(target.pid)
        undone = [c for c in self.changed_cells if c > target.count]
        self.undo_plan = UndoPlan(self.inflight.get(str(event.get("msg_id"))), target, undone)
        procs.kill(self.worker.pid)  # the pidfd brings us to _undo_worker_exit

    def _undo_refusal(self, steps: int) -> str:
        if self.undo_plan is not None or self.crash_pending is not None:
            return "an undo or a crash recovery is in progress; try again in a moment"
        targets = self.chain.undo_targets(self.state_count())
        depth = self.chain.undo_depth
        if not targets:
            level = self.protection.get("level", "?")
            return (f"nothing to undo: no restore point older than the current state is kept "
                    f"(protection {level}, undo_depth {depth}); %timeline says why")
        if steps > len(targets):
            return (f"cannot undo {steps} cells: only {len(targets)} restore point(s) before the "
                    f"current state are kept (undo_depth {depth}); %timeline lists them")
        if not procs.is_running(targets[-steps].pid):
            return "that restore point is gone (killed from outside?); %timeline shows what is left"
        return ""

    def _undo_worker_exit(self) -> None:
        """The worker ended for an undo: wake the target, keep the other requests.

        The requests behind the undo stay unanswered requests (a crash of the
        restored worker answers them) and are re-sent to it once it is ready.
        If the woken target itself ends before its hello, it is not woken again.
        """
        dead, plan = self.worker, self.undo_plan
        assert plan is not None
        procs.reap(dead.pid)
        if dead.pidfd >= 0:
            os.close(dead.pidfd)
        self.link.expect(0)
        if dead.debugging:
            self._debug_session_ended()  # the debugger lived in the undone worker
        if dead.pid == plan.target.pid:
            self._undo_fresh_worker(plan, "the restore point ended before it was ready")
            return
        if plan.pending is not None:
            self.inflight.pop(plan.pending.msg.msg_id, None)
        for pending in self.inflight.values():
            pending.started, pending.count = False, None
        self.backlog[:0] = [(p.channel, p.frames, for_main_thread(p.channel, p.msg))
                            for p in self.inflight.values()]
        self.changed_cells = [c for c in self.changed_cells if c <= plan.target.count]
        self.last_ok_count = min(self.last_ok_count, plan.target.count)
        close_later(self.worker.spill_fd)  # that worker is gone
        self.worker = WorkerState(snapshot_pid=plan.target.pid, snapshot_count=plan.target.count)
        if not self.promote_snapshot():
            self._undo_fresh_worker(plan, "the restore point was gone when it was woken")

    def _undo_fresh_worker(self, plan: UndoPlan, why: str) -> None:
        """The undo's restore point is lost: say why, and start an empty worker."""
        log.error("undo to the state after cell [%d]: %s; starting a fresh worker",
                  plan.target.count, why)
        plan.failed = why
        self.chain.forget(f"the state after cell [{plan.target.count}] was lost during an undo: {why}")
        self.changed_cells = []
        close_later(self.worker.spill_fd)  # that worker is gone
        self.worker = WorkerState()
        self.spawn_worker(None)

    def _finish_undo(self, hello: dict[str, Any]) -> None:
        """The restored worker is ready: tell everyone, then answer the %undo."""
        plan, self.undo_plan = self.undo_plan, None
        self.timeline_due = True
        if plan is None:
            return
        restored = bool(hello.get("promoted")) and not plan.failed
        request = plan.pending.msg if plan.pending else None
        who = (request.header.get("username") if request else "") or "a client"
        cells = ", ".join(f"[{c}]" for c in plan.undone) or "none"
        if restored:
            text = (f"Undo by {who}: the namespace is back to the state after cell "
                    f"[{plan.target.count}]; the changes of cells {cells} are undone (they stay "
                    "in the history). Effects outside the namespace (files written, network "
                    "calls, GPU memory) are not undone.\n")
        else:
            text = (f"Undo by {who} failed: {plan.failed or 'the restore point died'}; "
                    "the kernel starts empty.\n")
        entry = {"user": who, "state_after_cell": plan.target.count, "undone": plan.undone,
                 "restored": restored, "seconds": round(time.monotonic() - plan.began, 3)}
        self.publish("iopub", "display_data", {"data": {"text/plain": text.strip(), UNDO_MIME: entry},
                                               "metadata": {}, "transient": {}}, parent=request)
        self.announce("undo", by=request, method="snapshot" if restored else "fresh",
                      after_cell=plan.target.count, undone=plan.undone,
                      cell_msg_id=request.msg_id if request else None)
        if plan.pending is not None:
            self.recorder.finished(plan.pending.msg.msg_id, "ok" if restored else "error")
            count = plan.pending.count or self.execution_count
            reply: dict[str, Any] = {"status": "ok", "execution_count": count, "payload": [],
                                     "user_expressions": {}}
            if not restored:
                reply = {"status": "error", "execution_count": count, "ename": "UndoFailed",
                         "evalue": text.strip(), "traceback": [text.strip()]}
            self._answer(plan.pending, "execute_reply", reply, busy=False)
        if not restored and (request is None or request.content.get("stop_on_error", True)):
            self._abort_queued_executes()

    def _abort_queued_executes(self) -> None:
        """A failed undo is a failed cell: the executes queued behind it are aborted
        (the messaging spec's stop_on_error), not run on the empty worker."""
        executes = [p for p in self.inflight.values()
                    if p.channel == "shell" and p.msg.msg_type == "execute_request"]
        for pending in executes:
            self.inflight.pop(pending.msg.msg_id, None)
            self.backlog = [entry for entry in self.backlog if entry[1] is not pending.frames]
            self._answer(pending, "execute_reply", {"status": "aborted",
                                                    "execution_count": self.execution_count})

    # -- memory guard and status ---------------------------------------------
    def _guard_memory(self) -> None:
        if self.worker.ready and not self.worker.killed_for and \
                self.guard.check(self.worker.pid, self.chain):
            self.worker.killed_for = self.guard.cause
            log.warning("worker %d: %s", self.worker.pid, self.guard.cause)
        self._reap_zombies()

    def protection_status(self) -> dict[str, Any]:
        """kernel_info's ``ipytui.protection``: the level, the restore point, undo depth."""
        newest = self.chain.newest
        state = self.state_count()
        return {
            **self.protection,
            "restore_point": None if newest is None else {
                "after_cell": newest.count, "age_seconds": round(time.time() - newest.taken, 1),
                "cells_after": [c for c in self.changed_cells if c > newest.count]},
            "undo_available": len(self.chain.undo_targets(state)),
            "undo_depth": self.chain.undo_depth,
            "held": self.chain.held(), "held_text": format_size(self.chain.held()),
            "on_disk": self.chain.on_disk(), "on_disk_text": format_size(self.chain.on_disk()),
            "spill": newest.spill if newest is not None else "",
            "memory_limit": self.guard.limit, "memory_limit_text": format_size(self.guard.limit),
        }
