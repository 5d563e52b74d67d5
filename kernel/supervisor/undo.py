"""The supervisor's side of ``%undo``: choose the point, wake it in time, or fall back.

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (through
``TimeTravel``; its state is the supervisor's). An undo is a planned worker
death:

1. the worker's ``%undo`` forks a *fallback* (the state as it is now:
   worker/undo_fallback.py) and asks; ``undo_target.choose`` picks the point
   or says why not (the worker then drops its fallback);
2. accepted: the points newer than the target are set aside (alive), the
   worker is killed, and at its death the target is woken (SIGUSR1) with a
   deadline: ``WAKE_SECONDS`` plus ``WAKE_SECONDS_PER_GIB`` of what it holds,
   since a woken point first cuts its pickle checkpoint short, and that
   answers only between two C calls (0.3-1 s for one array of 256 MiB-1 GiB
   on a loaded 2-core machine; docs/protection.md);
3. ready in time: the set-aside points and the fallback are killed, and the
   undo's entry goes to every client; the requests behind it are re-sent to
   the restored worker;
4. not ready by then, or dead before its hello: the target is killed and
   dropped from the timeline, the set-aside points come back, and the
   fallback is woken in its place: it becomes the worker inside the ``%undo``,
   which fails there with ``UndoFailed`` (nothing lost). Without a fallback
   (no fork was possible, or it did not wake either) the newest kept point is
   woken, as after a crash: the state before the ``%undo`` when that point is
   the last cell's, and the %undo's error names any cell it lost. Only when no
   point is left does a fresh worker start, and says so.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.supervisor.inflight import (
    Pending,
    WorkerState,
    for_main_thread,
    is_shell_execute,
)
from ipytui.kernel.supervisor.restore_points import Logged, RestoreChain, RestorePoint
from ipytui.kernel.supervisor.spill_hold import close_later
from ipytui.kernel.supervisor.undo_target import UndoRequest, choose
from ipytui.kernel.supervisor.undo_text import error_content, outcome, woken

log = logging.getLogger("ipytui.supervisor")

UNDO_MIME = "application/vnd.ipytui.undo+json"
WAKE_SECONDS = 5.0  # a woken point's hello, beyond its checkpoint write (see the docstring)
WAKE_SECONDS_PER_GIB = 2.0


@dataclass
class UndoPlan:
    """An accepted undo, from the worker's death to the restored worker's hello."""

    pending: Pending | None
    target: RestorePoint
    undone: list[int]
    ask: str = ""  # the worker's question: the woken fallback is answered under it
    fallback: int = 0  # pid of the state before the undo (0: none could be forked)
    stage: str = ""  # who is woken: "target", "fallback", "newest" (kept point), "fresh"
    deadline: float = 0.0  # monotonic time by which the woken process must be ready
    allowed: float = 0.0  # the seconds it was given (wake_timeout)
    began: float = field(default_factory=time.monotonic)
    failed: str = ""  # why the target did not come back, else ""
    newest: int = 0  # stage "newest": the cell whose state the woken point holds
    replay: tuple[Logged, ...] = ()  # the cells logged after the target that it replays
    state: int = 0  # the cell whose state the undo brings back (the target's, or a logged one)

    @property
    def after(self) -> int:
        return self.state or self.target.count

    def woken(self) -> str:
        """The process woken now, for the error messages."""
        return woken(self.stage, self.target.count, self.newest)


def wake_timeout(pid: int) -> float:
    """Seconds a woken point gets to say hello: a base plus time for what it holds."""
    return WAKE_SECONDS + WAKE_SECONDS_PER_GIB * procs.rss_bytes(pid) / 2**30


class Undo:
    """``%undo`` for the supervisor (see the module docstring)."""

    worker: WorkerState
    inflight: dict[str, Pending]
    backlog: list[tuple[str, list[bytes], bool]]
    link: Any
    recorder: Any
    chain: RestoreChain
    protection: dict[str, Any]
    changed_cells: list[int]
    changed_ids: dict[int, str]
    undo_plan: UndoPlan | None
    zombies: list[int]
    timeline_due: bool
    crash_pending: Any
    execution_count: int
    last_ok_count: int
    publish: Callable[..., None]
    _answer: Callable[..., None]
    spawn_worker: Callable[..., None]
    promote_snapshot: Callable[[], bool]
    announce: Callable[..., dict[str, Any]]
    state_count: Callable[[], int]
    _discard: Callable[[list[int]], None]
    _answer_worker: Callable[[str, dict[str, Any]], None]
    _debug_session_ended: Callable[[], None]

    # -- the question ------------------------------------------------------------
    def _on_undo(self, event: dict[str, Any]) -> None:
        ask = str(event.get("ask"))
        pending = self.inflight.get(str(event.get("msg_id")))
        choice = self._undo_choice(event, pending)
        if isinstance(choice, str):
            self._answer_worker(ask, {"error": choice})  # the worker drops its fallback
            return
        target = choice.target
        plan = UndoPlan(
            pending,
            target,
            choice.undone,
            ask=ask,
            fallback=max(0, int(event.get("fallback") or 0)),
            replay=choice.replay,
            state=choice.state,
        )
        self.chain.set_aside(target.count)
        self.chain.take(target.pid)
        self.undo_plan = plan
        # Its pidfd's end brings the supervisor to _undo_worker_exit.
        procs.signal_exact(self.worker.pidfd, self.worker.pid)

    def _undo_choice(self, event: dict[str, Any], pending: Pending | None) -> Any:
        """The accepted choice (undo_target.UndoChoice), or why the undo is refused."""
        if self.undo_plan is not None or self.crash_pending is not None:
            return "an undo or a crash recovery is in progress; try again in a moment"
        seen = pending.seen if pending is not None else self.state_count()
        sent = pending.sent_before if pending is not None else frozenset()
        own = tuple(c for c in self.changed_cells if c > seen and self.changed_ids.get(c) in sent)
        try:
            ask = UndoRequest(
                steps=int(event.get("steps") or 1),
                first=int(event.get("to") or 0),
                last=int(event.get("last") or 0),
                seen=seen,
                own=own,
            )
        except (TypeError, ValueError):
            return "the undo's cell numbers are not numbers"
        choice = choose(ask, self.chain, self.changed_cells)
        if isinstance(choice, str):
            if "nothing to undo" in choice:
                choice += f" (protection {self.protection.get('level', '?')})"
            return choice
        if not procs.is_running(choice.target.pid):
            return "that restore point is gone (killed from outside?); %timeline shows what is left"
        return choice

    # -- waking ------------------------------------------------------------------
    def _undo_worker_exit(self) -> None:
        """A process of the undo ended: the old worker (wake the target) or a woken one
        before its hello (fall back)."""
        dead, plan = self.worker, self.undo_plan
        assert plan is not None
        procs.reap(dead.pid)
        if dead.pidfd >= 0:
            os.close(dead.pidfd)
        self.link.expect(0)
        if dead.debugging:
            self._debug_session_ended()  # the debugger lived in the undone worker
        if plan.stage == "fresh":  # the new worker died at once: the crash path's turn
            self._finish_undo({})
            self.spawn_worker(None)
            return
        if plan.stage:
            self._undo_failed(plan, f"the {plan.woken()} ended before it was ready")
            return
        # The requests behind the undo are re-sent to whoever comes back; the %undo
        # itself is answered by us (restored) or by the fallback (it runs it still).
        behind = [p for p in self.inflight.values() if p is not plan.pending]
        for pending in behind:
            pending.started, pending.count = False, None
        self.backlog[:0] = [
            (p.channel, p.frames, for_main_thread(p.channel, p.msg)) for p in behind
        ]
        self._wake(plan, plan.target.pid, "target")

    def _wake(self, plan: UndoPlan, pid: int, stage: str) -> None:
        plan.stage, plan.allowed = stage, wake_timeout(pid)
        plan.deadline = time.monotonic() + plan.allowed
        close_later(self.worker.spill_fd)  # the worker before is gone
        count = plan.newest if stage == "newest" else plan.target.count
        self.worker = WorkerState(snapshot_pid=pid, snapshot_count=count)
        named = procs.FALLBACK_NAME if stage == "fallback" else procs.SNAPSHOT_NAME
        if procs.has_name(pid, named) and self.promote_snapshot():
            if stage == "target":  # taken from the chain already: its replay is the plan's
                self.worker.replay = list(plan.replay)
            return
        if stage == "target":
            self._undo_failed(plan, "the restore point was gone when it was woken")
        else:
            self._undo_failed(plan, f"the {plan.woken()} was gone when it was woken")

    def check_undo_deadline(self) -> None:
        """A woken process that is not ready by the deadline is killed: fall back."""
        plan = self.undo_plan
        if plan is None or not plan.deadline or self.worker.ready:
            return
        if time.monotonic() < plan.deadline:
            return
        stuck = self.worker
        procs.signal_exact(stuck.pidfd, stuck.pid)  # woken, it may have lost a snapshot's name
        self._discard([stuck.pid])  # and its files go
        if stuck.pidfd >= 0:
            os.close(stuck.pidfd)
            stuck.pidfd = -1
        self.link.expect(0)
        self._undo_failed(
            plan,
            f"the {plan.woken()} did not become ready within "
            f"{plan.allowed:.0f} s (stopped or hung); it was killed",
        )

    def _undo_failed(self, plan: UndoPlan, why: str) -> None:
        """The woken process will not serve: the fallback in its place, else a new worker."""
        log.error("undo to the state after cell [%d]: %s", plan.target.count, why)
        if plan.stage == "target":
            plan.failed = why
            self.chain.forget(f"the state after cell [{plan.target.count}] was dropped: {why}")
            self._discard(self.chain.put_back(plan.target.count))
        else:  # the fallback or a kept point failed too
            plan.failed = f"{plan.failed}; then {why}"
            if plan.stage == "newest":
                self.chain.forget(f"the state after cell [{plan.newest}] was dropped: {why}")
        if plan.fallback:
            fallback, plan.fallback = plan.fallback, 0
            self._wake(plan, fallback, "fallback")
        elif (newest := self._newest_alive()) is not None:
            plan.newest = newest.last
            if plan.pending is not None:
                plan.pending.started = False  # the %undo runs nowhere any more: ours to answer
            self._wake(plan, newest.pid, "newest")
        else:
            self._undo_fresh_worker(plan, plan.failed)

    def _newest_alive(self) -> RestorePoint | None:
        """The newest kept point still alive (the dead ones leave the timeline)."""
        while (newest := self.chain.newest) is not None and not procs.is_running(newest.pid):
            self.chain.take(newest.pid)
            procs.reap(newest.pid)
            self.chain.forget(f"the state after cell [{newest.count}] had been killed")
        return newest

    def _undo_fresh_worker(self, plan: UndoPlan, why: str) -> None:
        """No state to come back to: say why, and start an empty worker."""
        log.error(
            "undo to the state after cell [%d]: %s; starting a fresh worker", plan.target.count, why
        )
        plan.failed, plan.stage, plan.deadline = why, "fresh", 0.0
        self.chain.forget(
            f"the state after cell [{plan.target.count}] was lost during an undo: {why}"
        )
        self._discard(self.chain.drop_aside())
        self.changed_cells = []
        if plan.pending is not None:
            plan.pending.started = False  # nobody runs it any more: ours to answer
        close_later(self.worker.spill_fd)  # the worker before is gone
        self.worker = WorkerState()
        self.spawn_worker(None)

    # -- the outcome ---------------------------------------------------------------
    def _finish_undo(self, hello: dict[str, Any]) -> None:
        """The woken worker is ready: tell everyone, and answer the %undo."""
        plan, self.undo_plan = self.undo_plan, None
        self.timeline_due = True
        if plan is None:
            return
        if plan.stage == "target" and hello.get("promoted"):
            self._undo_done(plan)
            return
        request = plan.pending.msg if plan.pending else None
        who = (request.header.get("username") if request else "") or "a client"
        kept = plan.stage == "fallback"
        lost = [c for c in self.changed_cells if c > plan.newest] if plan.stage == "newest" else []
        text = f"Undo by {who} failed: {plan.failed}. " + outcome(plan.stage, plan.newest, lost)
        if plan.stage == "newest":
            self.changed_cells = [c for c in self.changed_cells if c <= plan.newest]
            self.last_ok_count = min(self.last_ok_count, plan.newest)
        self.announce(
            "undo",
            by=request,
            method="kept" if kept else plan.stage,
            why=plan.failed,
            after_cell=plan.newest if plan.stage == "newest" else plan.target.count,
            undone=lost,
            cell_msg_id=request.msg_id if request else None,
        )
        if kept:  # the fallback runs the %undo: it fails there, with the reason
            self._answer_worker(plan.ask, {"error": text, "failed": True})
        elif plan.pending is not None:
            self.inflight.pop(plan.pending.msg.msg_id, None)
            self.recorder.finished(plan.pending.msg.msg_id, "error")
            self.publish("iopub", "error", error_content(text), parent=request)
            self._answer(
                plan.pending,
                "execute_reply",
                {
                    "status": "error",
                    "execution_count": self._undo_count(plan),
                    **error_content(text),
                },
                busy=False,
            )
        if request is None or request.content.get("stop_on_error", True):
            self._abort_queued_executes(plan.pending)

    def _undo_done(self, plan: UndoPlan) -> None:
        """The target serves: drop what it replaced, then say so and answer the %undo."""
        self._discard(self.chain.drop_aside())
        if plan.fallback:
            procs.kill_named(plan.fallback, procs.FALLBACK_NAME)
            self.zombies.append(plan.fallback)
        self.changed_cells = [c for c in self.changed_cells if c <= plan.after]
        self.last_ok_count = min(self.last_ok_count, plan.after)
        request = plan.pending.msg if plan.pending else None
        who = (request.header.get("username") if request else "") or "a client"
        cells = ", ".join(f"[{c}]" for c in plan.undone) or "none"
        text = (
            f"Undo by {who}: the namespace is back to the state after cell "
            f"[{plan.after}]; the changes of cells {cells} are undone (they stay "
            "in the history). Effects outside the namespace (files written, network "
            "calls, GPU memory) are not undone."
        )
        entry = {
            "user": who,
            "state_after_cell": plan.after,
            "undone": plan.undone,
            "restored": True,
            "seconds": round(time.monotonic() - plan.began, 3),
            "held": format_size(plan.target.held),
        }
        self.publish(
            "iopub",
            "display_data",
            {"data": {"text/plain": text, UNDO_MIME: entry}, "metadata": {}, "transient": {}},
            parent=request,
        )
        self.announce(
            "undo",
            by=request,
            method="snapshot",
            after_cell=plan.after,
            undone=plan.undone,
            cell_msg_id=request.msg_id if request else None,
        )
        if plan.pending is not None:
            self.inflight.pop(plan.pending.msg.msg_id, None)
            self.recorder.finished(plan.pending.msg.msg_id, "ok")
            self._answer(
                plan.pending,
                "execute_reply",
                {
                    "status": "ok",
                    "execution_count": self._undo_count(plan),
                    "payload": [],
                    "user_expressions": {},
                },
                busy=False,
            )

    def _undo_count(self, plan: UndoPlan) -> int:
        return (plan.pending.count if plan.pending else None) or self.execution_count

    def _abort_queued_executes(self, undo: Pending | None) -> None:
        """A failed undo is a failed cell: the executes queued behind it are aborted
        (the messaging spec's stop_on_error); other requests go on."""
        for pending in [p for p in self.inflight.values() if is_shell_execute(p)]:
            if pending is undo:
                continue
            self.inflight.pop(pending.msg.msg_id, None)
            self.backlog = [entry for entry in self.backlog if entry[1] is not pending.frames]
            self._answer(
                pending,
                "execute_reply",
                {"status": "aborted", "execution_count": self.execution_count},
            )
