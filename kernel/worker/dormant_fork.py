"""A restore point's birth: a fork whose child first sleeps until it is promoted or
its wait is over.

The child sleeps in ``sigtimedwait`` for SIGUSR1 (the supervisor's "you are the
worker now"). Most points never do anything else: back to back, the next
cell's point supersedes them, or they are dropped at ``undo_depth``.

It is a plain ``os.fork()``, whose child runs CPython's after-fork work
(``PyOS_AfterFork_Child``) in C before any bytecode. The fifth stop of
6 December forked through libc instead and had the child wait in C before that
work, to save the ~1.2 ms of CPU it costs a point: but the child returned from
that call into bytecode first, and a request from another thread to hand over
the GIL, pending at the fork, made the child drop a GIL no thread would ever
take: it hung for good (found in CI; 2-3 children in 300 with two busy threads,
tests/test_dormant_fork.py). No bytecode may run in a child before its
after-fork work, and pure Python cannot run a C call right after ``fork()``.
"""

from __future__ import annotations

import os
import signal


def fork(wait: float) -> tuple[int, bool]:
    """Fork. The parent gets ``(pid, False)``. The child first sleeps up to ``wait``
    seconds, then gets ``(0, promoted)``: True when SIGUSR1 ended its sleep (the
    signal is taken). SIGUSR1 must be blocked in the calling thread. Raises
    OSError when the fork fails."""
    pid = os.fork()
    if pid or wait <= 0:
        return pid, False
    return 0, signal.sigtimedwait({signal.SIGUSR1}, wait) is not None
