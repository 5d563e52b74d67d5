"""Naming the worker's forked children (/proc/PID/comm), through libc's prctl.

A waiting snapshot is named ``SNAPSHOT_NAME`` so the supervisor can find one
whose worker died before announcing it (procs.waiting_snapshots); an undo's
fallback and a checkpoint writer carry names of their own, so neither is ever
taken for a restore point.
"""

from __future__ import annotations

import functools
from typing import Any


def rename(name: bytes) -> bytes:
    """Set this thread's name; returns the old one."""
    prctl = libc_prctl()
    if prctl is None:
        return name
    import ctypes

    old = ctypes.create_string_buffer(16)
    prctl(16, old, 0, 0, 0)  # PR_GET_NAME
    prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    return old.value


@functools.cache
def libc_prctl() -> Any:
    """libc's prctl, looked up once (twice per snapshot would cost 70 us)."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
