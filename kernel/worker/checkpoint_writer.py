"""What a restore point writes to disk, at a lower priority than its own.

A point keeps the worker's priority: promoted after a crash or an undo it is
the worker, and a user's process can raise its nice value but never lower it
again. Its disk work yields to the user's cells all the same, on a thread of
the point WRITER_NICE nicer (on Linux the nice value is a thread's):

- the spill of its big buffers (worker/spill.py, which maps the file over the
  point's own memory): ``run_nicer``;
- its pickle checkpoint: ``write_until_signal``, which a promotion (SIGUSR1)
  cuts short by raising ``PromotedError`` in the writing thread.

The worker at level ``checkpoint`` has no point: a short-lived child of its
own writes there (``become_writer``), as nice, and ends with the worker
(PR_SET_PDEATHSIG) or on SIGTERM, which unwinds the atomic write.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from ipytui.kernel.worker.process_name import libc_prctl
from ipytui.kernel.worker.process_name import rename as rename_process

WRITER_NAME = b"ipytui-ckpt"  # never mistaken for a waiting restore point
WRITER_NICE = 10
WAIT_STEP = 0.05  # seconds between looks at a writing thread that is not done

T = TypeVar("T")


class PromotedError(BaseException):
    """SIGUSR1 during a checkpoint write: stop writing, become the worker.

    A BaseException, so the checkpoint's per-value ``except Exception`` lets it through.
    """


def run_nicer(work: Callable[[], T]) -> T:
    """``work()`` run on a thread WRITER_NICE nicer than the caller, waited for: the
    caller's own priority is untouched. Its exception, if any, is raised here."""
    outcome: list[tuple[bool, Any]] = []
    thread = _nicer_thread(work, outcome)
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def write_until_signal(write: Callable[[], bool], on_promotion: Callable[[], None]) -> bool:
    """Run ``write()`` on a nicer thread while this (main) thread waits for SIGUSR1,
    which must be blocked. The signal raises PromotedError in the writing thread
    (at its next bytecode, as a signal handler would run) and ends the wait:
    ``on_promotion()``, then False. Otherwise what ``write()`` returned (False if
    it raised)."""
    outcome: list[tuple[bool, Any]] = []
    thread = _nicer_thread(write, outcome)
    while thread.is_alive():
        if signal.sigtimedwait({signal.SIGUSR1}, WAIT_STEP) is not None:
            on_promotion()
            if not outcome:  # (one done already would take it as it ends: harmless)
                _raise_in(thread, PromotedError)
            thread.join()
            return False
    ok, value = outcome[0]
    return bool(value) if ok else False


def _nicer_thread(work: Callable[[], Any], outcome: list[tuple[bool, Any]]) -> threading.Thread:
    def run() -> None:
        try:
            with contextlib.suppress(OSError):
                os.nice(WRITER_NICE)  # this thread's alone
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="ipytui-writer", daemon=True)
    thread.start()
    return thread


def _raise_in(thread: threading.Thread, error: type[BaseException]) -> None:
    """Have ``error`` raised in ``thread`` at its next bytecode."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(error))


def become_writer(write: Callable[[], bool]) -> NoReturn:
    """In a child just forked to write a checkpoint: write WRITER_NICE nicer, ending
    with its parent or on SIGTERM, then exit (0 when written, 1 when not)."""
    ok = False
    parent = os.getppid()
    try:
        rename_process(WRITER_NAME)
        signal.signal(signal.SIGTERM, _exit_writing)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        prctl = libc_prctl()
        if prctl is not None:
            prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: it ends with its parent
        if os.getppid() != parent:  # the parent died before that was set
            os._exit(1)
        with contextlib.suppress(OSError):
            os.nice(WRITER_NICE)
        ok = write()
    finally:
        os._exit(0 if ok else 1)


def _exit_writing(signum: int, frame: Any) -> None:
    """SIGTERM in a writer child (its worker ended): stop; the atomic write removes
    its temporary file on the way out."""
    raise SystemExit(0)
