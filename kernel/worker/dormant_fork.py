"""A fork whose child sleeps before it runs a line of Python: a restore point's birth.

Measured on the 2-core VM, a restore point forked with ``os.fork()`` spent
about 1.5 ms of CPU before it first slept (CPython's after-fork work, the
at-fork hooks, and a copy-on-write fault for every page of the heap those
touched), and back-to-back cells take a point each and drop the oldest: that
CPU competed with the worker, the supervisor and the client on every cell.
Most points never do anything else: they are dropped (``undo_depth``) or
superseded before their checkpoint is due.

So this fork goes through libc, holding the GIL (``PyDLL``), with CPython's
``PyOS_BeforeFork``/``PyOS_AfterFork_Parent`` around it as ``os.fork()`` does;
the child first waits in ``sigtimedwait`` for SIGUSR1 (the promotion), and
only then, or when its wait is over, runs ``PyOS_AfterFork_Child`` and goes
on in Python. A point killed before that has touched next to no page.

Until ``PyOS_AfterFork_Child`` the child runs only these few lines of Python:
no import, no thread, no lock, no signal handler (the child's wait returns
early on any signal, and the Python handlers' flags are then reset by
``PyOS_AfterFork_Child`` as after ``os.fork()``).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import signal


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Api:
    """libc's fork, sigemptyset, sigaddset and sigtimedwait, and CPython's fork hooks,
    all called with the GIL held."""

    def __init__(self) -> None:
        libc = ctypes.PyDLL(None, use_errno=True)
        py = ctypes.pythonapi
        self.fork = libc.fork
        self.fork.restype, self.fork.argtypes = ctypes.c_int, []
        self.sigtimedwait = libc.sigtimedwait
        self.sigtimedwait.restype = ctypes.c_int
        self.sigtimedwait.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Timespec)]
        self.before, self.parent, self.child = (
            py.PyOS_BeforeFork, py.PyOS_AfterFork_Parent, py.PyOS_AfterFork_Child)
        for hook in (self.before, self.parent, self.child):
            hook.restype, hook.argtypes = None, []
        self.usr1 = ctypes.create_string_buffer(128)  # a sigset_t holding SIGUSR1 only
        libc.sigemptyset(self.usr1)
        libc.sigaddset(self.usr1, int(signal.SIGUSR1))


@functools.cache
def _api() -> _Api | None:
    try:
        return _Api()
    except (OSError, AttributeError):
        return None


def fork(wait: float) -> tuple[int, bool]:
    """Fork. The parent gets ``(pid, False)``. The child first sleeps up to ``wait``
    seconds in C, then gets ``(0, promoted)``: True when SIGUSR1 ended its sleep
    (the signal is taken). SIGUSR1 must be blocked in the calling thread.

    Falls back to ``os.fork()`` (no sleep: ``(pid, False)``) where the C names
    cannot be found. Raises OSError when the fork fails."""
    api = _api()
    if api is None or wait <= 0:
        import os

        return os.fork(), False
    ts = _Timespec(int(wait), int((wait % 1) * 1e9))
    api.before()
    pid = api.fork()
    if pid:  # the parent, or a failed fork
        failure = ctypes.get_errno()
        api.parent()
        if pid < 0:
            raise OSError(failure, errno.errorcode.get(failure, "fork failed"))
        return pid, False
    got = api.sigtimedwait(api.usr1, None, ctypes.byref(ts))
    api.child()
    return 0, got == signal.SIGUSR1

