"""The fallback of an ``%undo``: a fork of the worker as it is when the undo asks.

An accepted undo ends this worker and wakes an older restore point in its
place. If that point never becomes ready (stopped, hung, dead), the state the
user had must not be lost with the worker: the supervisor wakes this fallback
instead, which becomes the worker inside the very ``%undo`` that forked it, and
the magic fails there with ``UndoFailed`` (the namespace as it was). Unlike a
restore point it is never in the chain, never spills or writes a checkpoint,
and carries its own process name, so nothing takes it for one; the supervisor
kills it once the undo is decided (the worker does, when the undo is refused).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING

from ipytui.kernel.protocol.procs import FALLBACK_NAME, is_running
from ipytui.kernel.worker.forking import fork_quietly, user_threads
from ipytui.kernel.worker.process_name import rename as _rename

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

POLL = 0.5  # seconds between looks at the supervisor while waiting
MAX_WAIT = 600.0  # a fallback nobody woke or killed (its supervisor lost track) ends itself


def fork(worker: WorkerContext) -> int | None:
    """Fork the fallback. Returns its pid in the worker, 0 in the fallback once it has
    been woken (it is the worker now), None when none can be made (the undo then
    goes on without one)."""
    snapshots = worker.snapshots
    if snapshots is None or snapshots.why_not() is not None:
        return None
    threads = user_threads()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    old_name = _rename(FALLBACK_NAME)  # the child is born with it
    try:
        pid = fork_quietly(worker)
    except OSError:
        pid = -1
    if pid:
        _rename(old_name)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return pid if pid > 0 else None
    _wait_for_wake(snapshots.supervisor_pid)
    _rename(old_name)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    worker.promote(lost_threads=threads)
    worker.deferred = []  # the supervisor re-sends every request still unanswered
    return 0


def drop(pid: int) -> None:
    """The undo was refused: end the fallback (our child) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _wait_for_wake(supervisor_pid: int) -> None:
    """In the fallback: wait for SIGUSR1; exit when the supervisor is gone or never decides."""
    ends = time.monotonic() + MAX_WAIT
    while signal.sigtimedwait({signal.SIGUSR1}, POLL) is None:
        if not is_running(supervisor_pid) or time.monotonic() > ends:
            os._exit(0)
