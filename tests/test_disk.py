"""A full disk under the kernel's data dir: the kernel keeps executing and says so.

The data dir is a 20 MiB tmpfs mounted by the test (root only; skipped with
the reason elsewhere). A checkpoint of a 30 MiB object cannot fit, and a
filler file then takes the last byte, so the journal, the lock file and the
checkpoint all fail. Every cell must still be answered, each feature's
"paused" notice must reach the client exactly once, each must say "resumed"
once the space is back, and no partial or temporary file may be left.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IPYTUI_ARGV, tmpfs_data_dir, wait_until
from jupyter_client.blocking.client import BlockingKernelClient
from test_ui_support import IPYTUI_KERNEL_ARGV, SIZE, KernelProcess, make_app, run_cell, wait_for
from test_ui_support import wait_ready as wait_app_ready

pytestmark = pytest.mark.timeout(180)

T = 60.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/'data' (the kernel's IPYTUI_DATA_DIR in start_kernel) on a 20 MiB tmpfs."""
    with tmpfs_data_dir(tmp_path, "20m") as data:
        yield data


class Iopub:
    """Every IOPub message a client saw, read as the test goes."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> None:
        while self.kc.iopub_channel.msg_ready():
            self.seen.append(self.kc.get_iopub_msg(timeout=1))

    def notices(self) -> list[str]:
        self.drain()
        return [m["content"]["notice"] for m in self.seen if m["msg_type"] == "ipytui_status"]

    def stderr_notices(self) -> list[str]:
        return [m["content"]["text"] for m in self.seen if m["msg_type"] == "stream"
                and m["content"]["text"].startswith("[ipytui]")]


def execute(kc: BlockingKernelClient, seen: Iopub, code: str) -> dict[str, Any]:
    """Run a cell; every IOPub message (its own and the kernel's notices) goes to seen."""
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=T)
        seen.seen.append(msg)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            break
    while True:
        reply = kc.get_shell_msg(timeout=T)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def fill(path: Path) -> None:
    """Write until the device is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def leftovers(data: Path) -> list[Path]:
    return [p for p in data.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_full_disk_is_survived_and_said(small_disk: Path, start_kernel) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=T)
        seen = Iopub(kc)
        # 30 MiB does not fit in 20: the checkpoint fails and says so.
        assert execute(kc, seen, "big = bytes(30 * 2**20)")["status"] == "ok"
        wait_until(lambda: any(n.startswith("checkpoints paused: no space left on the device")
                               for n in seen.notices()), T, "the checkpoint's notice")
        assert not leftovers(small_disk)  # the failed checkpoint left no temporary file

        fill(small_disk / "filler")
        cells = [0]

        def both_paused() -> bool:
            # Cells until the journal and the lock file hit the full disk (SQLite may
            # still have room in pages it holds; the lock is rewritten when busy flips).
            content = execute(kc, seen, f"v{cells[0]} = {cells[0]}\nprint(v{cells[0]})")
            assert content["status"] == "ok", content
            cells[0] += 1
            return sum(n.startswith(("journal paused", "lock file paused"))
                       for n in seen.notices()) == 2

        wait_until(both_paused, T, "the journal's and lock's notices")
        assert cells[0] >= 1
        assert proc.poll() is None
        kc.kernel_info()
        info_reply = kc.get_shell_msg(timeout=T)
        assert set(info_reply["content"]["ipytui"]["disk"]) >= {"journal", "lock", "checkpoint"}

        (small_disk / "filler").unlink()
        assert execute(kc, seen, "del big")["status"] == "ok"
        resumed = {"journal resumed", "lock file resumed", "checkpoints resumed"}

        last_cell = [0.0]

        def all_resumed() -> bool:
            # A cell gives every feature a reason to write again; a pause between cells
            # lets the newest restore point write its checkpoint (it waits for one).
            if time.monotonic() - last_cell[0] > 1.0:
                execute(kc, seen, "v0 += 1")
                last_cell[0] = time.monotonic()
            return resumed <= set(seen.notices())

        wait_until(all_resumed, T, "every feature to resume")
        assert execute(kc, seen, "v0")["status"] == "ok"
        notices = seen.notices()
        for feature in ("checkpoints", "journal", "lock file"):
            paused = [n for n in notices if n.startswith(f"{feature} paused")]
            assert len(paused) == 1, notices  # told once, not per failed write
            assert notices.count(f"{feature} resumed") == 1, notices
        assert len(seen.stderr_notices()) == len(notices)  # every client sees it as text too
        assert proc.poll() is None
        assert not leftovers(small_disk), leftovers(small_disk)
    finally:
        kc.stop_channels()


async def test_the_status_pane_says_checkpoints_are_paused(small_disk: Path, tmp_path: Path) -> None:
    """The UI shows the kernel's notice, and a UI that joins later learns it from kernel_info."""
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    try:
        paused = "checkpoints paused: no space left on the device"
        app = make_app(kernel)
        async with app.run_test(size=SIZE) as pilot:
            await wait_app_ready(pilot)
            status = app.main_screen.status
            assert "paused" not in status.plain
            await run_cell(pilot, "big = bytes(30 * 2**20)")
            await wait_for(pilot, lambda: paused in status.plain, "the notice in the status pane",
                           timeout=T)
        late = make_app(kernel)
        async with late.run_test(size=SIZE) as pilot:
            await wait_app_ready(pilot)
            await wait_for(pilot, lambda: paused in late.main_screen.status.plain,
                           "the notice for a late joiner", timeout=T)
    finally:
        kernel.stop()


def test_a_connection_file_that_cannot_be_written_is_a_clear_error(small_disk: Path) -> None:
    """The kernel cannot be reached without it: a clear refusal, and no partial file."""
    runtime = small_disk / "runtime"
    runtime.mkdir()
    fill(small_disk / "filler")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "IPYTUI_DATA_DIR": str(small_disk)}
    done = subprocess.run([sys.executable, "-m", "ipytui.kernel"], env=env, text=True,
                          capture_output=True, timeout=T)
    assert done.returncode == 2, done.stderr
    assert "cannot write the connection file: no space left on the device" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(runtime.iterdir()) == []


def test_a_late_failure_of_an_older_checkpoint_does_not_pause_again() -> None:
    """Restore points write checkpoints in the background, so outcomes arrive out of
    order; an older point's failure after a newer point's success is stale."""
    from ipytui.kernel.supervisor.disk_health import DiskHealth

    told: list[str] = []

    def publish(channel: str, msg_type: str, content: dict[str, Any]) -> None:
        if msg_type == "ipytui_status":
            told.append(content["notice"].split(":")[0])

    disk = DiskHealth()
    disk.failed("checkpoint", "no space left on the device", seq=3)
    disk.ok("checkpoint", seq=5)
    disk.failed("checkpoint", "no space left on the device", seq=4)  # older than 5: stale
    disk.ok("checkpoint", seq=4)
    disk.flush(publish)
    assert told == ["checkpoints paused", "checkpoints resumed"]
    assert disk.state() == {}

    disk.failed("checkpoint", "no space left on the device", seq=6)  # newer: heard
    assert "checkpoint" in disk.state()
    disk.forget_order("checkpoint")  # a restart without restore: counts begin again
    disk.ok("checkpoint", seq=1)
    assert disk.state() == {}
