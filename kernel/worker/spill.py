"""Spill a restore point's large buffers to disk, so it holds ~no RAM (BGSAVE-like).

A fork restore point shares its pages with the worker until the worker writes
them; then the kernel copies each page for the point. A cell rewriting a big
array in place thus doubles its memory. Here the waiting point writes each of
its large private anonymous mappings (``/proc/self/maps``: ``rw-p``, no file,
at least ``threshold`` bytes, so never the stack, ``[heap]``, glibc's 64 MiB
thread arenas nor a file mapping) to its spill file chunk by chunk, and once a
chunk is on disk (``fdatasync``) maps that part of the file over the chunk
(``mmap(MAP_FIXED | MAP_PRIVATE)``). The point's own pages are gone, so the
worker's page is its alone again and its next write copies nothing; yet every
byte stays readable in the point, served from the file: the point's background
pickle checkpoint (and anything else that reads) sees the right values, never
zeros (a plain ``madvise(MADV_DONTNEED)`` would leave zero pages behind).

On promotion the point does not read the file back (a 1 GiB read took a
second): it removes the file's name and becomes the worker at once, its
ranges still private mappings of the deleted file. Reads come from the page
cache on demand, a write copies that page into the worker's anonymous memory
(MAP_PRIVATE: never into the file, never into another process); the inode
and its disk are held until the ranges are unmapped (the array freed). The
next point of that worker spills such a range like an anonymous one
(``big_regions`` knows our deleted spill files by name), writing all of it:
a page of it that is not in memory is file data, not zero. A failed spill (a
full disk, an I/O error) is undone by a refill (anonymous memory mapped back
over the range, the file read into it): the point keeps its copy in RAM, as
without spilling, and says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THRESHOLD = 128 * 2**20  # well above glibc's 64 MiB thread-arena heaps
CHUNK = 64 * 2**20  # written, synced and dropped at a time; a promotion waits at most one
PIECE = 2 * 2**20  # never-touched memory is skipped (a hole) at this granularity
PAGE = os.sysconf("SC_PAGE_SIZE")
_USED = bytes(1 if b & 0xC0 else 0 for b in range(256))  # pagemap: bit 63 present, 62 swapped
RESERVE_MIN = 256 * 2**20  # free disk left after a spill: at least this, or RESERVE_SHARE
RESERVE_SHARE = 0.05
PROT_RW = 0x1 | 0x2
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x02, 0x10, 0x20
MADV_HUGEPAGE, MADV_PAGEOUT = 14, 21
MAP_FAILED = ctypes.c_void_p(-1).value


class SpillError(OSError):
    """A spill or refill step failed; ``errno`` as the system call said."""


@dataclass
class Region:
    """One large mapping: its address, length, where it starts in the file, and how
    much of it (from its start) is now served from the file."""

    start: int
    length: int
    offset: int
    spilled: int = 0
    holes: set[int] = field(default_factory=set)  # file offsets of PIECEs never touched


@functools.cache
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.madvise.restype = ctypes.c_int
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _map(addr: int, length: int, fd: int, offset: int) -> None:
    """Map ``length`` bytes at ``addr`` exactly: the file from ``offset``, or anonymous
    zero pages when ``fd`` is -1 (replacing whatever was there)."""
    flags = MAP_PRIVATE | MAP_FIXED | (MAP_ANONYMOUS if fd < 0 else 0)
    got = _libc().mmap(addr, length, PROT_RW, flags, fd, offset)
    if got == MAP_FAILED or got != addr:
        err = ctypes.get_errno()
        raise SpillError(err, f"mmap at {addr:#x}: {os.strerror(err)}")


def _view(addr: int, length: int) -> memoryview:
    return memoryview((ctypes.c_char * length).from_address(addr)).cast("B")


_OUR_DELETED_SPILL = re.compile(r"\.spill\.\d+ \(deleted\)$")
# A private read-write mapping's line: start, end, inode and name. One regex pass in C
# (anchored on the newline: faster than re.M's ^); a worker has hundreds of lines,
# read before every point.
_RW_PRIVATE = re.compile(r"\n([0-9a-f]+)-([0-9a-f]+) rw-p \S+ \S+ (\d+) *([^\n]*)")


Mapping = tuple[int, int, bool]  # (start, end, from one of our deleted spill files)


def spillable(maps: str | None = None) -> list[Mapping]:
    """(start, end, from a spill file) of the private read-write mappings a point may
    spill (``maps``: /proc/self/maps' text, read when None): anonymous ones with no
    name, and private mappings of our own deleted spill files (a lazily promoted
    point's ranges). ``[heap]``, ``[stack]``, other files and memfds never count."""
    if maps is None:
        with open("/proc/self/maps") as f:
            maps = f.read()
    found = []
    for lo, hi, inode, name in _RW_PRIVATE.findall("\n" + maps):
        backed = bool(name) and bool(_OUR_DELETED_SPILL.search(name))
        if backed or (inode == "0" and not name):
            found.append((int(lo, 16), int(hi, 16), backed))
    return found


def big_regions(threshold: int, mapped: list[Mapping] | None = None) -> list[tuple[int, int]]:
    """(address, length) of this process's spillable mappings (``spillable``, or
    ``mapped`` as it returned) of at
    least ``threshold`` bytes. Adjacent spill file mappings count as one (a range is
    spilled in chunks). Never an anonymous neighbour with them: a small anonymous
    mapping may be the allocator's, written while the spill runs (mapping the file
    over it would take those writes back)."""
    found: list[tuple[int, int, bool]] = []
    for lo, hi, backed in spillable() if mapped is None else mapped:
        if backed and found and found[-1][2] and found[-1][1] == lo:
            found[-1] = (found[-1][0], hi, True)
        else:
            found.append((lo, hi, backed))
    return [(lo, hi - lo) for lo, hi, _ in found if hi - lo >= threshold]


def spill_mapped(mapped: list[Mapping] | None = None) -> list[tuple[int, int]]:
    """(start, end) of this process's private mappings of our deleted spill files: what
    a lazy promotion left mapped (its disk stays held until they are unmapped)."""
    return [(lo, hi) for lo, hi, backed in (spillable() if mapped is None else mapped) if backed]


def _open_direct(path: Path) -> int:
    """Create the spill file for direct I/O: the disk reads the point's pages itself (no
    copy into the page cache: ~6x faster and ~no CPU here); plain I/O where the file
    system refuses O_DIRECT (tmpfs). Ranges are page-aligned, as direct I/O wants."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o600)
    except OSError as exc:
        if exc.errno != 22:  # EINVAL: no direct I/O on this file system
            raise
        with contextlib.suppress(OSError):
            path.unlink()  # ours if it exists (O_EXCL): some kernels create it, then refuse
        return os.open(path, flags, 0o600)


def used_pieces(addr: int, length: int, backed: list[tuple[int, int]] | None = None) -> list[bool]:
    """For each PIECE of the range: whether any page of it is in RAM or swapped out
    (/proc/self/pagemap). A private anonymous page that is neither was never touched
    and reads as zero: ``np.zeros`` of 20 GB costs no RAM, and must cost no disk.
    A piece overlapping ``backed`` (file mappings: (start, end)) always counts: its
    pages not in memory hold the file's bytes."""
    pages_per_piece = PIECE // PAGE
    pages = length // PAGE
    with open("/proc/self/pagemap", "rb", buffering=0) as f:
        f.seek(addr // PAGE * 8)
        table = f.read(pages * 8)
    flags = table[7::8].translate(_USED)  # the top byte of each little-endian entry
    used = [b"\x01" in flags[i : i + pages_per_piece] for i in range(0, pages, pages_per_piece)]
    for lo, hi in backed or []:
        first, last = max(lo, addr), min(hi, addr + length)
        if first < last:
            for piece in range((first - addr) // PIECE, (last - 1 - addr) // PIECE + 1):
                used[piece] = True
    return used


def _runs(used: list[bool], start: int, length: int) -> list[tuple[int, int, bool]]:
    """(offset from ``start``, size, touched) of the runs of pieces alike in
    [start, start + length) of a region whose pieces are ``used``: one I/O per run."""
    runs: list[tuple[int, int, bool]] = []
    for piece in range(0, length, PIECE):
        size, touched = min(PIECE, length - piece), used[(start + piece) // PIECE]
        if runs and runs[-1][2] == touched:
            runs[-1] = (runs[-1][0], runs[-1][1] + size, touched)
        else:
            runs.append((piece, size, touched))
    return runs


def promotion_pending() -> bool:
    """Whether SIGUSR1 (promote) waits, blocked, for the point's sigtimedwait."""
    return signal.SIGUSR1 in signal.sigpending()


class Spill:
    """One point's spill: its regions and file (see the module docstring)."""

    def __init__(self, path: Path, regions: list[tuple[int, int]]) -> None:
        self.path = path
        self.regions: list[Region] = []
        offset = 0
        for start, length in regions:
            self.regions.append(Region(start, length, offset))
            offset += length
        self.total = offset
        self.fd = -1
        backed = spill_mapped()
        self.used = [used_pieces(start, length, backed) for start, length in regions]
        self.needed = sum(PIECE * sum(used) for used in self.used)  # disk really written

    @property
    def spilled(self) -> int:
        return sum(r.spilled for r in self.regions)

    def _check_room(self) -> None:
        st = os.statvfs(self.path.parent)
        free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        reserve = max(RESERVE_MIN, int(size * RESERVE_SHARE))
        if free < self.needed + reserve:
            raise SpillError(
                28,
                f"{free // 2**20} MiB free on the disk of {self.path.parent}, "
                f"{(self.needed + reserve) // 2**20} MiB needed (with a reserve)",
            )

    def run(self, stop: Callable[[], bool] = promotion_pending) -> bool:
        """Spill every region; False when ``stop()`` said to stop between chunks (the
        spilled part stays served from the file). Raises SpillError (or OSError) after
        undoing its work: the memory is the point's own again, the file removed."""
        try:
            self._check_room()
            self.fd = _open_direct(self.path)
            os.ftruncate(self.fd, self.total)  # sparse: never-touched pieces stay holes
            for region, used in zip(self.regions, self.used, strict=True):
                while region.spilled < region.length:
                    if stop():
                        return False
                    self._spill_chunk(region, used)
        except BaseException:
            self.undo()
            raise
        return True

    def _spill_chunk(self, region: Region, used: list[bool]) -> None:
        n = min(CHUNK, region.length - region.spilled)
        addr, at = region.start + region.spilled, region.offset + region.spilled
        view = _view(addr, n)
        for piece, size, touched in _runs(used, region.spilled, n):
            if not touched:  # zeros: the file's hole reads as zeros too
                region.holes.update(range(at + piece, at + piece + size, PIECE))
                continue
            os.posix_fallocate(self.fd, at + piece, size)  # a full disk says so here
            done = 0
            while done < size:
                done += os.pwrite(self.fd, view[piece + done : piece + size], at + piece + done)
        view.release()
        os.fdatasync(self.fd)  # on disk before the only other copy goes
        _map(addr, n, self.fd, at)
        region.spilled += n
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, at, n, os.POSIX_FADV_DONTNEED)  # no RAM as page cache

    def refill(self) -> None:
        """Make every spilled range anonymous memory holding its bytes again (a failed
        spill is undone so), then remove the file. Raises SpillError if the file cannot
        be read back: the point's state is then incomplete."""
        try:
            for region in self.regions:
                if region.spilled:
                    _map(region.start, region.spilled, -1, 0)
                    if region.spilled >= 2 * 2**20:
                        _libc().madvise(region.start, region.spilled, MADV_HUGEPAGE)
                    self._read_back(region)
        finally:
            self.remove()

    def _read_back(self, region: Region) -> None:
        """The written pieces back into the (fresh, zero) anonymous range; holes stay
        untouched memory, as they were."""
        used = [region.offset + p not in region.holes for p in range(0, region.spilled, PIECE)]
        for piece, size, touched in _runs(used, 0, region.spilled):
            if not touched:
                continue
            view = _view(region.start + piece, size)
            got = 0
            while got < size:
                read = os.preadv(self.fd, [view[got:]], region.offset + piece + got)
                if read <= 0:
                    raise SpillError(5, f"{self.path} ended early")
                got += read
            view.release()
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, region.offset, region.spilled, os.POSIX_FADV_DONTNEED)
        region.spilled, region.holes = 0, set()

    def undo(self) -> None:
        """After a failed spill: the spilled part back into RAM, no file left."""
        if self.fd >= 0 and self.spilled:
            self.refill()
        self.remove()

    def page_out(self) -> None:
        """Let go of the file pages a read (the checkpoint's pickling) brought in: they
        are clean, the file has them (MADV_PAGEOUT never loses a byte)."""
        for region in self.regions:
            if region.spilled:
                _libc().madvise(region.start, region.spilled, MADV_PAGEOUT)

    def remove(self) -> None:
        """Close and remove the file (its mapped part must have been refilled first,
        or the point is ending)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            self.path.unlink()


def spill_point(
    path: Path, regions: list[tuple[int, int]], note: Callable[[dict[str, Any]], None]
) -> Spill | None:
    """In a restore point just born: spill its large mappings (``regions``, as
    ``big_regions`` found them in the worker just before the fork) to ``path`` and tell
    the worker how it went (``note``). Returns the spill (a promotion removes its file),
    or None when nothing is spilled (nothing that large, or the spill failed and was
    undone: the point then keeps its copy in RAM, and the note says why)."""
    if not regions:
        return None
    spill = Spill(path, regions)
    report = {"event": "spill", "pid": os.getpid(), "bytes": spill.needed, "regions": len(regions)}
    try:
        finished = spill.run()
    except OSError as exc:
        from ipytui.kernel.protocol.atomic import disk_reason

        if spill.spilled:  # could not be read back: this point's state is incomplete
            note({**report, "ok": False, "lost": True, "why": disk_reason(exc)})
            os._exit(1)
        note({**report, "ok": False, "why": disk_reason(exc)})
        return None
    if finished:
        note({**report, "ok": True})
    return spill


def promote_lazily(spill: Spill | None) -> None:
    """Before a point becomes the worker: nothing is read back. Its spilled ranges stay
    private mappings of the file, whose name is removed at once (no file is left if the
    worker dies; the mapping keeps the inode, and its disk, while the ranges live)."""
    if spill is not None:
        spill.remove()
