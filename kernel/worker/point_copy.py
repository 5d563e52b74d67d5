"""After a cell that rewrote a big buffer, the worker copies it in bulk right after the fork.

A restore point is a fork: it shares the worker's pages, and the worker's first
write to each 4 KiB page afterwards copies that page on a fault. A cell that
rewrites a whole array (``big += 1``) then pays one fault per page, about
2.5 us each on this kind of virtual machine (7x the rewrite itself), and the
copies are 4 KiB pages, so every later fork copies 512 times more page table
entries (12.5 ms instead of 1.3 ms at 1 GiB).

When the cell before rewrote a big buffer, the next one likely does too. Then,
right after forking the point, the worker copies that buffer into fresh
memory in huge pages (two threads: ctypes lets go of the GIL) and maps the
copy over its own view (``mremap``, same addresses). The point keeps the pages
as they were at the fork, now its own; the worker's are its own too, so its
next rewrite runs at full speed. Only with no thread of the user's running: a
write between the copy and the ``mremap`` would be lost.

Whether a buffer was rewritten is guessed from a sample of it (8 bytes every
2 MiB, at most 64 of them) taken at each fork and compared at the next. A
wrong guess costs time (the copy), never state: both views hold the same bytes.
"""

from __future__ import annotations

import array
import ctypes
import functools
import gc
import mmap
import operator
import os
import threading
from collections.abc import Callable

SAMPLE_STRIDE = 2 << 20  # samples at least this far apart (a huge page)
MAX_SAMPLES = 64  # per buffer: one read of them all costs ~30 us
REWRITTEN = 0.5  # the share of samples that changed for a buffer to count as rewritten
_MADV_HUGEPAGE = 14
_MREMAP_MAYMOVE, _MREMAP_FIXED = 1, 2
_FAILED = ctypes.c_void_p(-1).value

Region = tuple[int, int]  # (address, length), page-aligned


class RewriteGuess:
    """The big buffers the last cell rewrote, from samples taken at each fork."""

    def __init__(self) -> None:
        self._samples: dict[Region, bytes] = {}

    def rewritten(self, regions: list[Region]) -> list[Region]:
        """The regions whose samples changed since the last call; samples them anew."""
        out: list[Region] = []
        seen: dict[Region, bytes] = {}
        for region in regions:
            now = _sample(region)
            before = self._samples.get(region)
            seen[region] = now
            if before is not None and _changed_share(before, now) >= REWRITTEN:
                out.append(region)
        self._samples = seen
        return out


def _sample(region: Region) -> bytes:
    """8 bytes every ``stride``, read in one ``process_vm_readv`` of this process: a
    buffer another thread has just freed reads short (then no sample), never as a
    crash. (Through /proc/self/mem where that call is missing: one read a sample.)"""
    start, length = region
    stride = max(SAMPLE_STRIDE, length // MAX_SAMPLES)
    addresses = range(start, start + length - 8, stride)
    libc = _libc()
    if libc is None:
        return _sample_by_mem(addresses)
    count = len(addresses)
    buf = ctypes.create_string_buffer(8 * count)
    local = array.array("Q", [ctypes.addressof(buf), 8 * count])  # iovecs: (base, length)
    remote = array.array("Q", bytes(16 * count))
    remote[0::2] = array.array("Q", addresses)
    remote[1::2] = array.array("Q", [8]) * count
    read = libc.readv(os.getpid(), local.buffer_info()[0], 1, remote.buffer_info()[0], count, 0)
    return buf.raw if read == 8 * count else b""


def _sample_by_mem(addresses: range) -> bytes:
    try:
        mem = os.open("/proc/self/mem", os.O_RDONLY)
    except OSError:
        return b""
    try:
        return b"".join(os.pread(mem, 8, at) for at in addresses)
    except OSError:
        return b""
    finally:
        os.close(mem)


def _changed_share(before: bytes, now: bytes) -> float:
    if len(before) != len(now) or not now:
        return 0.0
    old, new = array.array("Q", before), array.array("Q", now)
    return sum(map(operator.ne, old, new)) / len(new)


class _Libc:
    """mmap, madvise, mremap, munmap and process_vm_readv through ctypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        vp, size, int_ = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        self.mmap = _typed(libc.mmap, vp, [vp, size, int_, int_, int_, ctypes.c_long])
        self.madvise = _typed(libc.madvise, int_, [vp, size, int_])
        self.mremap = _typed(libc.mremap, vp, [vp, size, size, int_, vp])
        self.munmap = _typed(libc.munmap, int_, [vp, size])
        ulong = ctypes.c_ulong
        self.readv = _typed(libc.process_vm_readv, ctypes.c_ssize_t,
                            [int_, vp, ulong, vp, ulong, ulong])


def _typed(
    fn: Callable[..., object], restype: object, argtypes: list[object]
) -> Callable[..., int]:
    fn.restype, fn.argtypes = restype, argtypes  # type: ignore[attr-defined]
    return fn  # type: ignore[return-value]


@functools.cache
def _libc() -> _Libc | None:
    try:
        return _Libc()
    except (OSError, AttributeError):
        return None


def copy_over(regions: list[Region]) -> int:
    """Give this process fresh copies of ``regions`` at the same addresses (see the module
    docstring). Returns the bytes copied; a region that cannot be copied (no memory
    to spare for it now) stays as it is, shared with the point."""
    libc = _libc()
    if libc is None:
        return 0
    collecting = gc.isenabled()
    gc.disable()  # the listener thread must not free garbage holding a buffer mid-copy
    try:
        return _copy_all(libc, regions)
    finally:
        if collecting:
            gc.enable()


def _copy_all(libc: _Libc, regions: list[Region]) -> int:
    done = 0
    for start, length in regions:
        if length > _available() // 2:
            continue  # the faults copy only what the next cell writes
        copy = _mmap_like(libc, start, length)
        if copy is None:
            continue
        libc.madvise(copy, length, _MADV_HUGEPAGE)
        _parallel_copy(copy, start, length)
        if libc.mremap(copy, length, length, _MREMAP_MAYMOVE | _MREMAP_FIXED, start) != start:
            libc.munmap(copy, length)
            continue
        done += length
    return done


def _mmap_like(libc: _Libc, start: int, length: int) -> int | None:
    """Fresh memory at the same offset within a huge page as ``start``. A buffer's
    mapping rarely begins on a 2 MiB boundary (glibc puts a header page before it):
    a copy moved there from an aligned address could be mapped only in 4 KiB pages,
    and every later fork would copy 512 times more page table entries (measured:
    a 1 GiB buffer lost all its huge pages to the first copy, and each fork after
    it took 9-12 ms instead of ~1 ms)."""
    span = length + SAMPLE_STRIDE
    base = libc.mmap(None, span, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if base in (None, _FAILED):
        return None
    copy = base + (start - base) % SAMPLE_STRIDE  # same offset as start, within the span
    if copy > base:
        libc.munmap(base, copy - base)
    if base + span > copy + length:
        libc.munmap(copy + length, base + span - copy - length)
    return copy


def _available() -> int:
    """MemAvailable in bytes (0 where it cannot be read: then nothing is copied)."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _parallel_copy(dest: int, source: int, length: int) -> None:
    """memmove on two threads: the rest of the kernel waits for this one anyway."""
    half = (length // 2) & ~(SAMPLE_STRIDE - 1)
    if not half:
        ctypes.memmove(dest, source, length)
        return
    other = threading.Thread(
        target=ctypes.memmove,
        args=(dest + half, source + half, length - half),
        name="ipytui-copy",
        daemon=True,
    )
    other.start()
    ctypes.memmove(dest, source, half)
    other.join()
