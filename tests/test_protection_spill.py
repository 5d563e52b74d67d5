"""Restore points that spill their big buffers to disk (issue 13, worker/spill.py).

The real kernel, driven with jupyter_client: after a spill, a crash and an
``%undo`` give back exactly the bytes of the point (sha256 of a 320 MiB and a
160 MiB array, changed after the point), an array under the threshold stays in
the point's memory as before, the point holds its buffers on disk and not in
RAM (kernel_info says both), and a full disk leaves the point valid in RAM, said
in kernel_info, with no spill file left. The ``Spill`` class is also driven
directly on a real full tmpfs: nothing written, nothing left, memory intact.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import mmap
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import tmpfs_data_dir, wait_until
from ipytui.kernel.worker import spill
from jupyter_client.blocking import BlockingKernelClient
from test_protection import _argv, _client, _crash_report, _ok, _protection, _run, _stderr

pytestmark = pytest.mark.timeout(180)

MiB = 2**20
# Level cell keeps a point's copies in RAM while one per kept point fits the budget
# (4 x 480 MiB here): a budget of 1500 MiB makes these points spill.
SPILLING = ("--protection", "cell", "--snapshot-budget", "1500M")
SETUP = (
    "import hashlib, os\n"
    "import numpy as np\n"
    "big = np.arange(40 * 2**20, dtype=np.float64)\n"  # 320 MiB: spilled
    "other = np.full(20 * 2**20, 7.0)\n"  # 160 MiB: spilled
    "small = np.arange(8 * 2**20, dtype=np.float64)\n"  # 64 MiB: under the threshold, kept
    "f = lambda v: v + 1\n"
)
SUMS = "print(*(hashlib.sha256(a.data).hexdigest()[:16] for a in (big, other, small)), f(1))"
MAPPED = "print(sum('.spill.' in line for line in open('/proc/self/maps')))"  # file-backed
CHANGE = "big += 1; other[:] = 0; small *= 2\n"


def _spilled(kc: BlockingKernelClient) -> dict[str, Any]:
    """kernel_info's protection once the newest point has spilled (or said it could not)."""
    found: dict[str, Any] = {}

    def said() -> bool:
        found.update(_protection(kc))
        return bool(found.get("spill"))

    wait_until(said, timeout=90, what="the restore point's spill outcome in kernel_info")
    return found


def _spill_files(data: Path) -> list[Path]:
    return sorted((data / "checkpoints").glob("*.spill.*"))


def _set_up_and_spill(kc: BlockingKernelClient) -> tuple[str, dict[str, Any]]:
    """The arrays made; their sums, and kernel_info's protection once the point spilled."""
    _ok(kc, SETUP)
    before = _ok(kc, SUMS)
    return before, _spilled(kc)


def _crash_gives_back(kc: BlockingKernelClient, before: str) -> None:
    """The arrays changed, the worker killed: the point comes back with the old bytes."""
    reply, outputs = _run(kc, CHANGE + "os.kill(os.getpid(), 9)")
    assert reply["status"] == "error" and reply["ename"] == "KernelDied", reply
    report = _crash_report(kc, outputs)
    assert report["restored_from"] == "snapshot", report
    assert _ok(kc, SUMS) == before


def test_a_crash_after_a_spill_gives_back_the_exact_bytes(start_kernel, tmp_path: Path) -> None:
    info, proc = start_kernel(_argv(*SPILLING))
    kc = _client(info)
    try:
        before, status = _set_up_and_spill(kc)
        assert status["spill"].startswith("spilled"), status
        assert status["on_disk"] >= 480 * MiB, status  # both big arrays, not the small one
        # RAM and disk counted apart (a checkpoint being written holds up to one 64 MiB
        # chunk of the spill's pages for a moment, besides the point's own small change)
        assert status["held"] < 200 * MiB, status
        assert _file_pids(tmp_path / "data") == _live_points(tmp_path / "data")  # one each
        for pid in _live_points(tmp_path / "data"):  # the spill ran on a thread 10 nicer
            point = psutil.Process(pid)
            assert point.nice() == point.parent().nice(), pid
        said = _ok(kc, "%protection")
        assert "of RAM" in said and "on disk (spilled buffers)" in said, said
        assert "to disk)" in _ok(kc, "%timeline")  # each point says what its spill did
        _crash_gives_back(kc, before)
        assert _ok(kc, MAPPED) != "0\n"  # lazy: still mapped from the (deleted) file
        assert proc.poll() is None
        kc.shutdown()
        wait_until(lambda: proc.poll() is not None, what="the kernel to stop")
        assert _spill_files(tmp_path / "data") == []  # a stopping kernel removes its points' files
    finally:
        kc.stop_channels()


def test_undo_after_a_spill_gives_back_the_exact_bytes(start_kernel, tmp_path: Path) -> None:
    """Undo, then crash. The lazily promoted worker maps its deleted spill file; were
    its death to free the file, the crash restore would wait for gigabytes to be
    freed: the supervisor holds the file while that worker lives, then lets go."""
    info, proc = start_kernel(_argv(*SPILLING))
    kc = _client(info)
    try:
        _ok(kc, SETUP)
        before = _ok(kc, SUMS)
        _spilled(kc)
        _ok(kc, CHANGE)
        assert _ok(kc, SUMS) != before
        reply, outputs = _run(kc, "%undo 2")  # the print cell counts: it could change state
        assert reply["status"] == "ok", (reply, outputs)
        assert _ok(kc, SUMS) == before
        assert _ok(kc, MAPPED) != "0\n"  # lazy: the promoted point read nothing back
        # The promoted point removed its file's name at once; the dropped newer
        # point's file went with it: only the files of live points remain.
        wait_until(
            lambda: _file_pids(tmp_path / "data") <= _live_points(tmp_path / "data"),
            what="no spill file of a dead point",
        )
        first = _held_spills(proc.pid)
        assert len(first) == 1, first  # the supervisor holds the worker's file open
        _spilled(kc)  # the worker's new point has its own file
        reply, outputs = _run(kc, "os.kill(os.getpid(), 9)")
        assert reply["ename"] == "KernelDied", reply
        assert _crash_report(kc, outputs)["restored_from"] == "snapshot"
        assert _ok(kc, SUMS) == before
        wait_until(lambda: first[0] not in _held_spills(proc.pid), what="the old file let go")
        assert len(_held_spills(proc.pid)) == 1  # the new worker's own, nothing leaked
    finally:
        kc.stop_channels()


def _held_spills(pid: int) -> list[str]:
    """The deleted spill files the process ``pid`` (the supervisor) has open."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if ".spill." in target and target.endswith(" (deleted)"):
            held.append(target)
    return held


def _tree_pss(pid: int) -> int:
    """PSS of the kernel's processes (supervisor, worker, restore points), bytes."""
    import psutil

    total = 0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            with open(f"/proc/{proc.pid}/smaps_rollup") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            pass  # a point dropped meanwhile
    return total


def _all_spilled(data: Path) -> None:
    """Wait until the newest restore point has a spill file and every live point's file
    holds both big arrays (points older than the arrays have none)."""
    from ipytui.kernel.protocol.procs import snapshots_of

    def done() -> bool:
        live = snapshots_of(str(data / "checkpoints" / "0.pickle"))
        files = {p.name: p for p in _spill_files(data)}
        sizes = [
            files[f"0.pickle.spill.{pid}"].stat().st_blocks * 512
            for pid in live
            if f"0.pickle.spill.{pid}" in files
        ]
        newest = bool(live) and f"0.pickle.spill.{live[-1]}" in files
        return newest and min(sizes) >= 480 * MiB

    wait_until(done, timeout=120, what="every restore point's spill on disk")


def test_a_lazy_promotion_stays_exact_and_1x_through_more_points(
    start_kernel, tmp_path: Path
) -> None:
    """Crash -> lazy promotion -> new points of the promoted worker (its ranges mapped
    from a deleted spill file: never-read pages are file data, not zeros) -> undo ->
    crash again: the bytes are exact each time, and the points stay ~1x in RAM."""
    info, proc = start_kernel(_argv(*SPILLING))
    kc = _client(info)
    data = tmp_path / "data"
    try:
        _ok(kc, "import os")
        base = _tree_pss(proc.pid)
        _ok(kc, SETUP)
        before = _ok(kc, SUMS)
        _all_spilled(data)
        reply, outputs = _run(kc, CHANGE + "os.kill(os.getpid(), 9)")
        assert reply["ename"] == "KernelDied", reply
        assert _crash_report(kc, outputs)["restored_from"] == "snapshot"
        _all_spilled(data)  # the promoted worker's new point, before anything reads the arrays
        assert "of deleted spill files" in _ok(kc, "%protection")  # the disk it holds, said
        assert _ok(kc, "big *= 3; small -= 1") == ""  # `other` stays unread, on the deleted file
        _all_spilled(data)
        mid = _ok(kc, SUMS)
        assert mid != before
        _ok(kc, "big += 1; other += 1; small += 1")  # every page written after the point
        _all_spilled(data)
        arrays = 544 * MiB
        # Not 2x: the points hold no copy. A point drops its pages just after its spill
        # file is whole (what _all_spilled sees): awaited, on a loaded machine.
        wait_until(lambda: _tree_pss(proc.pid) - base < 1.6 * arrays, 60,
                   "the points to hold no copy of the arrays")
        timeline = _ok(kc, "%timeline")
        reply, outputs = _run(kc, "%undo")
        assert reply["status"] == "ok", (reply, outputs, timeline, _ok(kc, "%timeline"))
        assert _ok(kc, SUMS) == mid
        assert _ok(kc, MAPPED) != "0\n"  # lazy again
        _all_spilled(data)
        reply, outputs = _run(kc, CHANGE + "os.kill(os.getpid(), 9)")
        assert reply["ename"] == "KernelDied", reply
        assert _crash_report(kc, outputs)["restored_from"] == "snapshot"
        assert _ok(kc, SUMS) == mid
        assert proc.poll() is None
        kc.shutdown()
        wait_until(lambda: proc.poll() is not None, what="the kernel to stop")
        assert _spill_files(data) == []
    finally:
        kc.stop_channels()


def _file_pids(data: Path) -> set[int]:
    return {int(p.name.rsplit(".", 1)[1]) for p in _spill_files(data)}


def _live_points(data: Path) -> set[int]:
    """The live restore points of the first kernel start_kernel made (kernel-0.json)."""
    from ipytui.kernel.protocol.procs import snapshots_of

    return set(snapshots_of(str(data / "checkpoints" / "0.pickle")))


def test_auto_counts_what_each_point_spills_and_moves_to_idle(start_kernel) -> None:
    """A point per cell would write the big buffers to disk per cell: auto moves to
    idle, and says why (the spill, not a copy)."""
    info, _ = start_kernel(_argv())
    kc = _client(info)
    try:
        _ok(kc, SETUP)
        reply, outputs = _run(kc, "y = 1")
        assert reply["status"] == "ok"
        notice = _stderr(outputs)
        assert "Protection level idle" in notice and "spills 480 MiB to disk" in notice, notice
        assert _protection(kc)["level"] == "idle"
    finally:
        kc.stop_channels()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/'data' (the kernel's IPYTUI_DATA_DIR) on a 64 MiB tmpfs."""
    with tmpfs_data_dir(tmp_path, "64m") as data:
        yield data


def test_a_full_disk_keeps_the_point_in_ram_and_says_so(small_disk: Path, start_kernel) -> None:
    info, proc = start_kernel(_argv(*SPILLING))
    kc = _client(info)
    try:
        before, status = _set_up_and_spill(kc)
        assert status["spill"].startswith("not spilled"), status
        assert "in RAM" in status["spill"] and status["on_disk"] == 0, status
        assert _spill_files(small_disk) == []
        _crash_gives_back(kc, before)
        assert proc.poll() is None
    finally:
        kc.stop_channels()


def test_spill_on_a_full_file_system_leaves_nothing(small_disk: Path, monkeypatch) -> None:
    """Past the free-space check (skipped here), the write itself meets the full disk:
    no file is left and the memory still holds its bytes."""
    size = 128 * MiB
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(bytes(range(256)) * (size // 256))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    digest = hashlib.sha256(buf).hexdigest()
    target = small_disk / "k.pickle.spill.1"
    monkeypatch.setattr(spill.Spill, "_check_room", lambda self: None)
    job = spill.Spill(target, [(addr, size)])
    with pytest.raises(OSError) as raised:
        job.run(stop=lambda: False)
    assert raised.value.errno == errno.ENOSPC
    assert not target.exists() and job.spilled == 0
    assert hashlib.sha256(buf).hexdigest() == digest


def _inside(addr: int, size: int, regions: list[tuple[int, int]]) -> bool:
    """Whether [addr, addr + size) lies in one of the regions (the kernel may merge a
    new mapping with a neighbouring anonymous one)."""
    return any(lo <= addr and addr + size <= lo + n for lo, n in regions)


def test_spill_maps_the_file_over_the_memory_and_refills_it(tmp_path: Path) -> None:
    """The mechanism alone, in this process: after a spill the range is served from
    the file (same bytes, not anonymous memory); a refill makes it memory again."""
    size = 160 * MiB
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(os.urandom(MiB) * (size // MiB))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    digest = hashlib.sha256(buf).hexdigest()
    assert _inside(addr, size, spill.big_regions(128 * MiB))
    job = spill.Spill(tmp_path / "k.pickle.spill.2", [(addr, size)])
    assert job.run(stop=lambda: False)
    assert job.spilled == size and (tmp_path / "k.pickle.spill.2").exists()
    assert not _inside(addr, size, spill.big_regions(128 * MiB))  # now a file mapping
    assert hashlib.sha256(buf).hexdigest() == digest
    job.refill()
    assert not (tmp_path / "k.pickle.spill.2").exists()
    assert hashlib.sha256(buf).hexdigest() == digest


def test_a_lazily_promoted_range_is_spilled_again_whole(tmp_path: Path) -> None:
    """After a lazy promotion the range is a private mapping of the deleted file: writes
    stay in this process, ``big_regions`` still finds it, and a second spill writes all
    of it (pages never read since are file data, not zeros), then serves it exactly."""
    size = 160 * MiB
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(os.urandom(MiB) * (size // MiB))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    first = spill.Spill(tmp_path / "k.pickle.spill.4", [(addr, size)])
    assert first.run(stop=lambda: False)
    spill.promote_lazily(first)
    assert not (tmp_path / "k.pickle.spill.4").exists()
    assert any(lo <= addr < hi for lo, hi in spill.spill_mapped())
    assert _inside(addr, size, spill.big_regions(128 * MiB))
    buf[:4] = b"mine"  # copied into this process: the (deleted) file keeps its bytes
    digest = hashlib.sha256(buf).hexdigest()
    # MADV_DONTNEED past our copied page: the rest is unmapped, read again from the file
    assert spill._libc().madvise(addr + spill.PAGE, size - spill.PAGE, 4) == 0
    assert sum(spill.used_pieces(addr, size)) == 1  # pagemap alone would call it zeros
    second = spill.Spill(tmp_path / "k.pickle.spill.5", [(addr, size)])
    assert second.needed == size  # all of it: a page not in memory is file data here
    assert second.run(stop=lambda: False)
    assert not any(lo <= addr < hi for lo, hi in spill.spill_mapped())  # its own file now
    assert hashlib.sha256(buf).hexdigest() == digest
    second.refill()
    assert hashlib.sha256(buf).hexdigest() == digest and buf[:4] == b"mine"


def test_a_checkpoint_writes_big_arrays_out_of_band_and_reads_them_back(tmp_path: Path) -> None:
    """The checkpoint's pickle holds a big array's length, not its bytes (no second copy
    in RAM while writing); reading the file gives the same values back."""
    import numpy as np
    from ipytui.kernel.worker import checkpoint

    namespace = {
        "a": np.arange(4 * MiB, dtype=np.float64),
        "t": np.arange(6).reshape(2, 3).T,
        "x": 3,
    }
    state = checkpoint.capture(namespace, ["a", "t", "x"], 7)
    assert len(state["values"]["a"]) < 4096 and [v.nbytes for v in state["buffers"]["a"]] == [
        32 * MiB
    ]
    written: list[int] = []
    checkpoint.write(tmp_path / "c.pickle", state, lambda: written.append(1))
    assert written == [1]
    back: dict[str, Any] = {}
    names, lost = checkpoint.restore(checkpoint.read(tmp_path / "c.pickle"), back)
    assert names == ["a", "t", "x"] and lost == {}
    assert np.array_equal(back["a"], namespace["a"]) and back["a"].flags.writeable
    assert np.array_equal(back["t"], namespace["t"]) and back["x"] == 3


def test_leftover_spill_files_of_dead_points_are_swept(tmp_path: Path) -> None:
    """At start (and in `ipytui list`) the files of points that are gone are removed;
    a running point's file is never touched."""
    from ipytui.kernel.protocol.spill_files import spill_path, sweep_spills

    dead = subprocess.Popen(["true"])
    dead.wait()
    ckpt = tmp_path / "k.pickle"
    gone, live = spill_path(ckpt, dead.pid), spill_path(ckpt, os.getpid())
    for path in (gone, live):
        path.write_bytes(b"x")
    assert sweep_spills(tmp_path) == [gone]
    assert live.exists() and not gone.exists()


def test_never_touched_memory_costs_no_disk_and_stays_untouched(tmp_path: Path) -> None:
    """A big array mostly never written (np.zeros of a large shape): only the touched
    pieces are written; after the refill the rest is still untouched memory."""
    size = 256 * MiB
    twin = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    twin[5 * MiB : 5 * MiB + 4] = b"data"
    digest = hashlib.sha256(twin).hexdigest()  # hashing reads (maps) every page: a twin
    fresh = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    fresh[5 * MiB : 5 * MiB + 4] = b"data"  # one piece touched
    faddr = ctypes.addressof(ctypes.c_char.from_buffer(fresh))
    assert sum(spill.used_pieces(faddr, size)) == 1
    job = spill.Spill(tmp_path / "k.pickle.spill.3", [(faddr, size)])
    assert job.needed == spill.PIECE
    assert job.run(stop=lambda: False)
    assert (tmp_path / "k.pickle.spill.3").stat().st_blocks * 512 <= 4 * MiB
    job.refill()
    assert sum(spill.used_pieces(faddr, size)) == 1  # the rest still costs no RAM
    assert hashlib.sha256(fresh).hexdigest() == digest


def test_level_cell_keeps_copies_in_ram_while_they_fit_the_budget(start_kernel) -> None:
    """Chosen by hand, level cell spills nothing while a copy of the big buffers for
    every kept point fits the snapshot budget (written again at every cell, they would
    slow the cells); kernel_info says nothing is spilled, and undo and crash still
    give back the exact bytes."""
    info, _ = start_kernel(_argv("--protection", "cell", "--snapshot-budget", "4G"))
    kc = _client(info)
    try:
        _ok(kc, SETUP)
        before = _ok(kc, SUMS)
        status = _protection(kc)
        assert status["level"] == "cell" and status["spills"] == 0, status
        assert status.get("on_disk", 0) == 0 and not status.get("spill"), status
        _ok(kc, CHANGE)
        reply, outputs = _run(kc, "%undo 2")
        assert reply["status"] == "ok", (reply, outputs)
        assert _ok(kc, SUMS) == before
        reply, outputs = _run(kc, "os.kill(os.getpid(), 9)")
        assert reply["ename"] == "KernelDied", reply
        assert _ok(kc, SUMS) == before
        assert _ok(kc, MAPPED) == "0\n"  # nothing was ever mapped from a spill file
    finally:
        kc.stop_channels()
