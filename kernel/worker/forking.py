"""Forking the worker safely: the restore points and the undo's fallback both do it.

A child inherits every lock as it was at the fork; one held mid-use by another
thread would never be released in the child. So the worker forks while it holds
the locks a child could need (jedi's, the output's) itself. A thread the user
started does not survive the fork: the child says which ones it lost.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ipytui.kernel.worker import dormant_fork
from ipytui.kernel.worker.jedi_runner import jedi_lock_for_fork

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext


def fork_quietly(worker: WorkerContext) -> int:
    """``os.fork()`` with no lock a child could need held mid-use. jedi's first, so
    waiting for it does not hold up the other threads' output."""
    with jedi_lock_for_fork(), worker.publisher.lock, worker.stdout._lock, worker.stderr._lock:
        return os.fork()


def fork_dormant(worker: WorkerContext, wait: float) -> tuple[int, bool]:
    """``fork_quietly`` for a restore point: the child first sleeps up to ``wait``
    seconds, or until promoted (worker/dormant_fork.py). Returns ``(pid, False)``
    in the parent and ``(0, promoted)`` in the child."""
    with jedi_lock_for_fork(), worker.publisher.lock, worker.stdout._lock, worker.stderr._lock:
        return dormant_fork.fork(wait)


def user_threads() -> list[str]:
    """The names of the threads a fork leaves behind (the user's, not ours)."""
    return [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.name.startswith("ipytui-")
    ]
