"""The worker copies a buffer the last cell rewrote right after forking the point
(kernel/worker/point_copy.py): the guess, the copy, and the real kernel's undo and
crash recovery over it."""

from __future__ import annotations

import ctypes
import mmap

import pytest
from ipytui.kernel.protocol.procs import private_bytes
from ipytui.kernel.worker.point_copy import RewriteGuess, copy_over
from test_protection import MiB, _argv, _client, _ok, _run, _snapshots_of_worker

pytestmark = pytest.mark.timeout(180)

COPYING = ("--protection", "cell", "--spill-threshold", "16M")  # 32 MiB counts as big
MAKE = "import numpy as np; a = np.zeros(4 * 2**20, dtype=np.int64)"  # 32 MiB


def _buffer(size: int) -> tuple[mmap.mmap, tuple[int, int]]:
    buf = mmap.mmap(-1, size)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return buf, (address, size)


def test_the_guess_sees_a_rewrite_not_a_small_change() -> None:
    buf, region = _buffer(16 * MiB)
    guess = RewriteGuess()
    assert guess.rewritten([region]) == []  # nothing to compare with yet
    buf[:] = b"\1" * len(buf)
    assert guess.rewritten([region]) == [region]
    buf[0:4096] = b"\2" * 4096  # one page of 4096
    assert guess.rewritten([region]) == []
    assert guess.rewritten([]) == []  # and it forgets what it no longer sees


def test_copy_over_keeps_the_bytes_at_the_same_address() -> None:
    buf, (address, size) = _buffer(8 * MiB)
    buf[:] = bytes(range(256)) * (size // 256)
    assert copy_over([(address, size)]) == size
    assert ctypes.addressof(ctypes.c_char.from_buffer(buf)) == address
    assert buf[:] == bytes(range(256)) * (size // 256)
    buf[0] = 7  # still writable, still ours
    assert buf[0] == 7


def test_a_rewritten_buffer_is_copied_and_undo_and_crash_stay_right(start_kernel) -> None:
    info, proc = start_kernel(_argv(*COPYING))
    kc = _client(info)
    try:
        _ok(kc, MAKE)
        _ok(kc, "a += 1")  # the worker copies a right after forking this cell's point
        newest = _snapshots_of_worker(kc)[-1]
        assert private_bytes(newest) >= 30 * MiB  # the point holds a's pages alone
        _ok(kc, "a += 1")
        assert _ok(kc, "print(int(a.min()), int(a.max()))") == "2 2\n"
        reply, _ = _run(kc, "%undo 2")  # the print and the second rewrite
        assert reply["status"] == "ok", reply
        assert _ok(kc, "print(int(a.min()), int(a.max()))") == "1 1\n"
        reply, _ = _run(kc, "a += 5; import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
        assert reply["status"] == "error", reply
        assert _ok(kc, "print(int(a.min()), int(a.max()))") == "1 1\n"  # the crash's writes gone
        assert proc.poll() is None
    finally:
        kc.stop_channels()


def test_no_copy_while_a_user_thread_runs(start_kernel) -> None:
    info, _ = start_kernel(_argv(*COPYING))
    kc = _client(info)
    try:
        _ok(kc, MAKE + "; import threading; stop = threading.Event()")
        _ok(kc, "threading.Thread(target=stop.wait, daemon=True).start()")
        _ok(kc, "a += 1")
        _ok(kc, "a += 1")  # a copy now could lose the thread's writes: the faults copy
        newest = _snapshots_of_worker(kc)[-1]
        assert private_bytes(newest) < 16 * MiB
        reply, _ = _run(kc, "%undo")
        assert reply["status"] == "ok", reply
        assert _ok(kc, "stop.set(); print(int(a.min()), int(a.max()))") == "1 1\n"
    finally:
        kc.stop_channels()


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping holding ``address`` (/proc/self/smaps)."""
    found, huge = False, 0
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                lo, hi = (int(x, 16) for x in first.split("-"))
                found = lo <= address < hi
            elif found and line.startswith("AnonHugePages:"):
                huge += int(line.split()[1])
    return huge


def test_the_copy_keeps_huge_pages_of_a_buffer_off_a_2_mib_boundary() -> None:
    """glibc puts a header page before a big buffer: its mapping begins 4 KiB past a
    huge page boundary. A copy moved there from an aligned address lost every huge
    page (each later fork then copied 512 times more page table entries)."""
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        if "[never]" in f.read():
            pytest.skip("transparent huge pages are off on this machine")
    huge, size = 2 * MiB, 32 * MiB
    span = mmap.mmap(-1, size + 2 * huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(span))
    start = (base + huge - 1) // huge * huge + 4096  # 4 KiB past a boundary, as glibc's
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.madvise(start, size, 14) == 0  # MADV_HUGEPAGE
    ctypes.memset(start, 7, size)
    if _anon_huge_kib(start) < (size - 2 * huge) // 1024:
        pytest.skip("no huge pages to be had here now")
    assert copy_over([(start, size)]) == size
    assert _anon_huge_kib(start) >= (size - 2 * huge) // 1024  # the interior's, all kept
    assert ctypes.string_at(start, 16) == b"\7" * 16
    assert ctypes.string_at(start + size - 16, 16) == b"\7" * 16
    del span  # unmapped with the mapping it was carved from
