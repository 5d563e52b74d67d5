"""Where a cell meets the protection level: its price measured, its restore point
taken (or left for the idle moment), and what magics may ask of it.

``execute`` (handlers.py) calls ``measure`` after the cell and
``take_restore_point`` before the reply; ``ProtectionContext`` is the part of
the magics' context that ``%protection``, ``%undo`` and ``%timeline`` use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.worker.forking import user_threads
from ipytui.kernel.worker.replayable import replayable

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext
    from ipytui.kernel.worker.protection import Protection


MAX_LOGGED = 64  # cells logged after one point: a restore replays at most these
CONSOLIDATE_SECONDS = 0.1  # idle this long after logged cells, the worker forks a point
LOG_SECONDS = 0.05  # a logged cell that ran longer takes a point (replays stay quick)


def loggable(worker: WorkerContext, code: str, source: str, content: dict[str, Any]) -> bool:
    """Before a cell runs: may it be logged after the newest point instead of forking
    one (worker/replayable.py)? Only while the state is exactly that point's plus the
    cells logged since, at level ``cell``, with no thread or event callback of the
    user's that could run beside it or after it."""
    snapshots = worker.snapshots
    if snapshots is None:
        return False
    snapshots.kept = False
    return (
        snapshots.exact
        and snapshots.logged < MAX_LOGGED
        and snapshots.protection.wants_snapshot_now()
        and source.strip() == code.strip()
        and not content.get("silent")
        and content.get("store_history", True) is not False
        and not content.get("user_expressions")
        and not any(worker.shell.events.callbacks.values())
        and not user_threads()
        and snapshots.why_not() is None
        and replayable(code, worker.namespace)
    )


def log_cell(worker: WorkerContext, count: int, msg: Message, code: str) -> bool:
    """After a good loggable cell: its log entry, to leave with the reply (no fork).
    False when it ran too long to be replayed quickly: it takes a point then."""
    snapshots = worker.snapshots
    assert snapshots is not None
    last = snapshots.protection.last  # the cell's cost, as ``measure`` took it
    if not snapshots.exact or last is None or last.seconds > LOG_SECONDS:
        return False  # touched meanwhile (a completion on the listener), or too slow
    snapshots.held = snapshots.log(count, code, msg.header.get("username", ""), msg.msg_id)
    return snapshots.held is not None


def state_touched(worker: WorkerContext) -> None:
    """Something besides a logged cell may have changed the state (a comm message, a
    completion's attribute lookup, the debugger): the next cell takes a point."""
    if worker.snapshots is not None:
        worker.snapshots.exact = False


def measure(worker: WorkerContext, protection: Protection, count: int, changed: bool) -> None:
    """Measure the cell's copy-on-write price; say under the cell what it changed."""
    before = protection.level
    notes = protection.decide(protection.cell_finished(count), changed)
    for note in notes:
        worker.publisher.send(
            "iopub", "stream", {"name": "stderr", "text": f"[protection] {note}\n"}
        )
    if protection.level != before:
        drop = protection.level == "checkpoint"  # no live restore point at that level
        if drop and worker.snapshots is not None:
            worker.snapshots.drop_all()
        worker.publisher.sup({"event": "protection", **protection.info(), "drop": drop})


def take_restore_point(
    worker: WorkerContext, count: int, msg: Message, code: str, loggable: bool = False
) -> bool:
    """After a good state-changing cell, before its reply: log it (``loggable``), fork
    the restore point now (level cell) or leave it for the idle moment (level idle;
    at level checkpoint a short-lived child then writes the pickle checkpoint). True
    in a snapshot that was promoted to be the worker (the supervisor has answered
    the cell)."""
    snapshots = worker.snapshots
    if snapshots is None:
        return False
    # The supervisor reads the names the cell changed from its request, when a timeline asks.
    cell = {"user": msg.header.get("username", ""), "msg_id": msg.msg_id}
    snapshots.cell_code = code
    if loggable and log_cell(worker, count, msg, code):
        # A pause of CONSOLIDATE_SECONDS takes the point anyway (questions.py): the
        # checkpoint on disk then follows, and a later restore replays nothing.
        snapshots.protection.due = (count, msg.msg_id, cell)
        return False
    if snapshots.protection.wants_snapshot_now():  # its event leaves with the reply
        return snapshots.after_cell(worker, count, msg.msg_id, cell, hold=True)
    if snapshots.protection.waits_for_idle():
        snapshots.protection.due = (count, msg.msg_id, cell)
    return False


def announce_point(worker: WorkerContext) -> None:
    """Send the event of the point ``take_restore_point`` took, in the reply's write:
    the point exists before the reply leaves, and the reply is forwarded first."""
    snapshots = worker.snapshots
    if snapshots is None:
        return
    if not snapshots.kept:  # the cell changed what no point or log entry holds
        snapshots.exact = False
    if snapshots.held is not None:
        event, snapshots.held = snapshots.held, None
        worker.publisher.sup(event)


class ProtectionContext:
    """The magics' way to the restore points (a base of handlers.MagicContext)."""

    _worker: WorkerContext

    def ask_supervisor(self, event: dict[str, Any]) -> dict[str, Any]:
        """A question to the supervisor about the restore points, for the running cell."""
        parent = self._worker.publisher.parent
        return self._worker.ask_supervisor({**event, "msg_id": parent.msg_id if parent else ""})

    def undo(self, event: dict[str, Any]) -> dict[str, Any]:
        """Ask for an undo, with a fallback of the state now forked first
        (worker/undo_fallback.py). Returns the supervisor's answer: a refusal
        (``error``), or, in the fallback woken because the target never became
        ready, ``error`` with ``failed``. An accepted undo ends this process."""
        from ipytui.kernel.worker import undo_fallback

        worker = self._worker
        parent = worker.publisher.parent
        ask = worker.new_ask()
        fallback = undo_fallback.fork(worker)
        if fallback == 0:  # the fallback, woken: the supervisor says why
            return worker.await_answer(ask)
        answer = worker.ask_supervisor(
            {**event, "msg_id": parent.msg_id if parent else "", "fallback": fallback or 0}, ask=ask
        )
        if fallback:  # refused: this worker goes on, the fallback is not needed
            undo_fallback.drop(fallback)
        return answer

    def protection_info(self) -> dict[str, Any]:
        snapshots = self._worker.snapshots
        return snapshots.protection.info() if snapshots is not None else {}

    def set_protection(self, setting: str) -> str:
        """Apply a %protection choice; the supervisor hears of it (and drops the points
        for off and checkpoint, which keep no live restore point)."""
        snapshots = self._worker.snapshots
        if snapshots is None:
            return "This worker takes no snapshots."
        notice = snapshots.protection.choose(setting)
        drop = setting in ("off", "checkpoint")
        if drop:
            snapshots.drop_all()
        elif not snapshots.protection.snapshot_pid:  # protect the current state at once
            parent = self._worker.publisher.parent
            snapshots.protection.due = (
                self._worker.execution_count,
                parent.msg_id if parent else "",
                {"user": parent.header.get("username", "") if parent else "", "changed": []},
            )
        self._worker.publisher.sup(
            {"event": "protection", **snapshots.protection.info(), "drop": drop}
        )
        return notice
