"""The supervisor's side of a worker crash: answer, requeue, bring back, report.

When the worker dies, the cell it ran gets an error reply (never a hang),
the executes behind it wait until the replacement says which cell its state
follows, and a recovery report is published. Too many crashes in a row and
restarting stops, with every request answered by why. A mixin of
:class:`~ipytui.kernel.supervisor.loop.Supervisor`, kept apart so the routing
there reads on its own; the attributes below are the supervisor's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol import engine_identity, procs
from ipytui.kernel.protocol.engine_identity import MAIN_THREAD_REQUESTS
from ipytui.kernel.protocol.recovery import report_bundle
from ipytui.kernel.protocol.schema import reply_type
from ipytui.kernel.protocol.wire import Codec, WireError
from ipytui.kernel.supervisor import crash_report
from ipytui.kernel.supervisor.inflight import (
    Pending,
    WorkerState,
    for_main_thread,
    is_shell_execute,
)
from ipytui.kernel.supervisor.spill_hold import close_later

log = logging.getLogger("ipytui.supervisor")


class CrashHandling:
    """Crash handling for the supervisor (see the module docstring)."""

    # Supervisor state this mixin reads and writes.
    info: Any
    worker: WorkerState
    inflight: dict[str, Pending]
    backlog: list[tuple[str, list[bytes], bool]]
    running: bool
    execution_count: int
    restarts: int
    last_crash: str
    given_up: str
    crashes: crash_report.CrashHistory
    crash_pending: crash_report.CrashRecord | None
    crash_running: Pending | None
    crash_queued: list[Pending]
    restart_due: tuple[float, crash_report.CrashRecord, tuple[int, int]] | None
    checkpoint_path: Path
    link: Any
    recorder: Any
    publish: Callable[..., None]
    _answer: Callable[..., None]
    answer_error: Callable[..., None]
    _flush_backlog: Callable[[], None]
    spawn_worker: Callable[..., None]
    promote_snapshot: Callable[[], bool]
    announce: Callable[..., dict[str, Any]]
    chain: Any
    protection: dict[str, Any]
    changed_cells: list[int]
    undo_plan: Any
    _undo_worker_exit: Callable[[], None]

    def _on_worker_exit(self) -> None:
        """The worker died: record why, answer its clients, bring back a worker."""
        if self.undo_plan is not None:
            self._undo_worker_exit()
            return
        dead = self.worker
        status = procs.reap(dead.pid)
        if dead.pidfd >= 0:
            os.close(dead.pidfd)
        self.link.expect(0)
        # Nothing is routed to the dead worker while the replacement is on its way.
        close_later(self.worker.spill_fd)  # that worker is gone
        self.worker = WorkerState(
            snapshot_pid=dead.snapshot_pid, snapshot_count=dead.snapshot_count
        )
        snapshot = self._newest_snapshot(dead)
        running = self._running_cell()
        if not self.running:
            return
        if dead.debugging:
            self._debug_session_ended()
        if self.crash_pending is not None:
            self._finish_crash(None)  # the last crash's new worker died before its hello
        record = crash_report.CrashRecord.from_exit(
            status, running.msg if running else None, dead.notes, snapshot_count=snapshot[1]
        )
        record.cell = running.count if running else None
        if dead.killed_for:
            record.cause = dead.killed_for
        record.protection = dict(self.protection)
        record.changed_cells = list(self.changed_cells)
        self.last_crash = record.cause
        log.warning("worker %d died: %s", dead.pid, record.cause)  # to the log file, not a client
        self._requeue_after_crash(running)
        self.crash_pending = record
        self.restarts += 1
        delay = self.crashes.add(record.ok_since_start)
        if delay is None:
            close_later(self.worker.spill_fd)  # that worker is gone
            self.worker = WorkerState()
            self._give_up(record)
            return
        # Back off without blocking the loop: requests keep being answered or queued.
        self.restart_due = (time.monotonic() + delay, record, snapshot)

    def _debug_session_ended(self) -> None:
        """The debugger lived in the dead worker: tell front ends its session is over
        (DAP ``terminated``), so none waits on a breakpoint that will never resume."""
        self.publish(
            "iopub",
            "debug_event",
            {"type": "event", "seq": 0, "event": "terminated", "body": {}},
            parent=None,
        )

    def _bring_back(self) -> None:
        """Start the replacement worker once the back-off is over."""
        due, record, snapshot = self.restart_due
        if time.monotonic() < due:
            return
        self.restart_due = None
        record.restart_began = time.monotonic()
        close_later(self.worker.spill_fd)  # that worker is gone
        self.worker = WorkerState(snapshot_pid=snapshot[0], snapshot_count=snapshot[1])
        if snapshot[0] and self.promote_snapshot():
            record.method = "snapshot"
        else:
            record.method = "checkpoint" if self.checkpoint_path.exists() else "fresh"
            self.spawn_worker(str(self.checkpoint_path) if record.method == "checkpoint" else None)
        if record.method != "snapshot":
            # Front ends take "restarting" for a lost session (JupyterLab drops the pending
            # replies, so the crashed cell would never show its report): say it only when
            # the state did not come back whole.
            self.publish("iopub", "status", {"execution_state": "restarting"})

    def _newest_snapshot(self, dead: WorkerState) -> tuple[int, int]:
        """(pid, cell count) of the dead worker's latest snapshot, announced or not.

        An unannounced one is newer than any we know; its hello brings its count.
        The older points of the chain are kept for %undo.
        """
        known = self.chain.pids()
        unknown = [pid for pid in procs.waiting_snapshots() if pid not in known]
        for pid in unknown[:-1]:
            procs.kill_snapshot(pid)
            procs.reap(pid)
        if unknown:
            return unknown[-1], 0
        while (newest := self.chain.newest) is not None and not procs.is_running(newest.pid):
            self.chain.take(newest.pid)
            procs.reap(newest.pid)  # killed while it waited (the OOM killer's pick)
            dead.notes.append(
                f"the snapshot after cell [{newest.count}] had been killed "
                "(out of memory?) and could not be used"
            )
        if newest is None:
            return 0, 0
        return newest.pid, newest.count

    def _running_cell(self) -> Pending | None:
        """The execute (or an engine's task) the worker was running: the oldest unanswered one.

        The worker runs executes in arrival order and takes each at once, and
        its last messages (even execute_input) may die with it unsent.
        """
        executes = [
            p
            for p in self.inflight.values()
            if p.channel == "shell" and p.msg.msg_type in MAIN_THREAD_REQUESTS
        ]
        started = [p for p in executes if p.started]
        return started[0] if started else (executes[0] if executes else None)

    def _requeue_after_crash(self, running: Pending | None) -> None:
        """Keep the crashed cell and the executes behind it until the new worker says
        which cell its state follows; re-send everything else (an engine's tasks
        behind it too: ipyparallel has no stop-on-error for them)."""
        pending, self.inflight = list(self.inflight.values()), {}
        self.crash_running = running
        self.crash_queued = [p for p in pending if p is not running and is_shell_execute(p)]
        others = [
            (p.channel, p.frames, for_main_thread(p.channel, p.msg))
            for p in pending
            if p is not running and p not in self.crash_queued
        ]
        self.backlog[:0] = others

    def _blame(
        self, record: crash_report.CrashRecord, ready: dict[str, Any] | None
    ) -> Pending | None:
        """The cell that really crashed.

        A cell can finish and the worker die before its reply leaves the
        process. The promoted snapshot knows the last cell it holds the state
        of: if that is the cell we suspected, it gets its 'ok' and the blame
        moves to the next one.
        """
        running, queued = self.crash_running, list(getattr(self, "crash_queued", []))
        self.crash_running, self.crash_queued = None, []
        after = (ready or {}).get("after_msg_id")
        if running is not None and after and after == running.msg.msg_id and is_cell(running):
            self._answer(
                running,
                "execute_reply",
                {
                    "status": "ok",
                    "execution_count": running.count or record.snapshot_count,
                    "payload": [],
                    "user_expressions": {},
                },
                busy=False,
            )
            self.recorder.finished(running.msg.msg_id, "ok")
            running = queued.pop(0) if queued else None
            record.request = running.msg if running else None
            record.cell = running.count if running else None
        # As for any error, the failed cell's stop_on_error decides whether the
        # executes queued behind it are aborted (the messaging spec).
        abort = running is not None and running.msg.content.get("stop_on_error", True)
        for p in queued:
            if abort:
                self._answer(
                    p,
                    "execute_reply",
                    {"status": "aborted", "execution_count": self.execution_count},
                )
            else:
                self.backlog.insert(queued.index(p), (p.channel, p.frames, True))
        return running

    def _answer_crashed(self, running: Pending, error: dict[str, Any], cause: str) -> None:
        """The crashed request's error reply; an engine's carries what ipyparallel reads."""
        engine = engine_identity.from_env()
        content = {"status": "error", **error}
        if is_cell(running):
            content["execution_count"] = self.execution_count
        else:
            content["evalue"] = f"{cause} while running this task"
        if engine is None:
            self._answer(running, reply_type(running.msg.msg_type), content, busy=False)
            return
        content["engine_info"] = engine.info("apply" if not is_cell(running) else "execute")
        self._answer(
            running,
            reply_type(running.msg.msg_type),
            content,
            busy=False,
            metadata=engine.reply_metadata("error"),
        )

    def _give_up(self, record: crash_report.CrashRecord) -> None:
        """Stop restarting: say so to the crashed cell, then answer every request with why."""
        text = (
            f"The kernel crashed {self.crashes.in_a_row} times in a row without finishing a "
            f"cell ({record.cause}); ipytui stopped restarting it. Restart it by hand "
            "(shutdown_request with restart=true) once the cause is fixed."
        )
        log.error(text)
        self.given_up = text
        record.method = "stopped"
        record.notes.append(text)
        running = getattr(self, "crash_running", None)
        self.publish(
            "iopub",
            "stream",
            {"name": "stderr", "text": text + "\n"},
            parent=running.msg if running else None,
        )
        self._finish_crash(None)
        self._flush_backlog()

    def _refuse(self, channel: str, frames: list[bytes]) -> None:
        """No worker will come: answer a request with the reason instead of queueing it."""
        try:
            msg = Codec(self.info.key, self.info.signature_scheme, check_replay=False).deserialize(
                frames
            )
        except WireError:
            return
        self.inflight.pop(msg.msg_id, None)
        self.answer_error(channel, msg, "KernelDied", self.given_up, [self.given_up])

    # -- crash reporting --------------------------------------------------
    def _finish_crash(self, ready: dict[str, Any] | None) -> None:
        """Answer the crashed cell and publish the recovery report."""
        record, self.crash_pending = self.crash_pending, None
        if record is None:
            return
        running = self._blame(record, ready)
        report = record.report(ready, time.monotonic())
        if running is None:
            # No cell to carry it: the report is the only word most clients get.
            self.publish("iopub", "display_data", report_bundle(report))
        else:
            # The error's traceback is the report as text: every Jupyter client shows
            # it once; ipytui UIs read the structured report from the event below.
            error = record.error_content(report)
            msg_id = running.msg.msg_id
            self.publish("iopub", "error", error, parent=running.msg)
            self.recorder.output(msg_id, "error", error)
            self.recorder.finished(msg_id, "crashed", "KernelDied")
            self._answer_crashed(running, error, record.cause)
        self.announce(
            "crash",
            by=running.msg if running else None,
            report=report,
            cell_msg_id=running.msg.msg_id if running else None,
            execution_count=record.cell,
        )


def is_cell(pending: Pending) -> bool:
    """An execute (else an engine's apply_request)."""
    return pending.msg.msg_type == "execute_request"
