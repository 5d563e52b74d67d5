"""Replaying logged cells in a promoted restore point (the undo log's second half).

A cell that ``worker/replayable.py`` admits took no restore point: the
supervisor logged its code after the newest point. When that point is woken
(a crash, ``%undo``, a restart that restores), the supervisor sends the
logged cells it must hold with its ``resume`` command, and the woken worker
runs them here, in order, before anything else, with no output: they run no
user code and read nothing outside the namespace, so they change it exactly
as they did the first time. Each replayed cell is logged again after the
point the promoted worker took of itself, so it can be undone as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ipytui.kernel.worker.execution import run_cell
from ipytui.kernel.worker.handlers import remember_input, transform

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")


def replay(worker: WorkerContext, cells: list[Any]) -> int:
    """Run the logged ``cells`` ([count, code, user] each), oldest first; returns how
    many ran. A cell that fails (it should not) stops the replay: the supervisor
    hears which, and the clients read what was lost."""
    snapshots = worker.snapshots
    done = 0
    for entry in cells:
        try:
            count, code = int(entry[0]), str(entry[1])
            user = str(entry[2]) if len(entry) > 2 else ""
        except (TypeError, ValueError, IndexError):
            log.warning("ignored a malformed logged cell: %r", entry)
            continue
        remember_input(worker.namespace, code, count)
        worker.displayhook.silent = True  # a logged cell displays nothing; to be sure
        outcome = run_cell(transform(code), count, worker.namespace, worker.displayhook)
        worker.displayhook.silent = False
        if outcome.status != "ok":
            why = f"{outcome.ename}: {outcome.evalue}"
            log.error("logged cell [%d] failed when replayed: %s", count, why)
            if snapshots is not None:
                snapshots.exact = False
            worker.publisher.sup({"event": "replay_failed", "count": count, "why": why})
            return done
        done += 1
        if snapshots is not None and snapshots.exact:
            worker.publisher.sup({
                "event": "logged", "count": count, "code": code, "user": user,
                "point": snapshots.protection.snapshot_pid, "msg_id": "", "replayed": True,
            })
            snapshots.logged += 1
    return done
