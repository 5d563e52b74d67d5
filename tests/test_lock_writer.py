"""The lock file is rewritten off the supervisor's loop (supervisor/lock_writer.py).

A rewrite is a temporary file renamed over the lock; on a busy disk the rename
waited tens of ms, and the loop that did it held the cell's reply and idle. A
FIFO put where the temporary file goes makes a rewrite wait for as long as
the test likes (its ``open`` blocks until a reader comes): the cells must
still be answered meanwhile, and the rewrite must land once it can.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import IPYTUI_ARGV, wait_until
from ipytui.kernel.protocol.atomic import tmp_path as atomic_tmp
from ipytui.kernel.supervisor.lock_writer import LockWriter
from jupyter_client.blocking.client import BlockingKernelClient

pytestmark = pytest.mark.timeout(120)

T = 30.0


class Fifo:
    """A FIFO at ``path`` that holds a writer's ``open`` until ``release``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        self.fd = -1
        self.data = b""

    def release(self) -> None:
        """Open the reading end (the writer's open returns) and collect what it writes."""
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    def read_all(self) -> bool:
        """True once the writer wrote and closed its end; what it wrote is in ``data``.
        (Before the writer's open returns, a read finds no writer: EOF with no data.)"""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        self.data += chunk
        return not chunk and bool(self.data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def test_submit_never_waits_and_the_newest_version_lands(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    done: list[OSError | None] = []
    taken = threading.Event()  # the thread asks for the path once it took a version
    writer = LockWriter(lambda: taken.set() or lock, done.append)
    fifo = Fifo(atomic_tmp(lock))
    try:
        writer.submit(b"first")  # its open blocks on the FIFO
        assert taken.wait(T)
        writer.submit(b"second")  # returns at once, though the thread is stuck
        writer.submit(b"third")  # replaces "second", never written
        assert not lock.exists()
        fifo.release()
        wait_until(fifo.read_all, T, "the first version through the FIFO")
        assert fifo.data == b"first"
        assert writer.close(timeout=T)
    finally:
        fifo.close()
    assert lock.read_bytes() == b"third"
    assert stat.S_ISREG(lock.stat().st_mode)
    assert done == [None, None]
    assert not atomic_tmp(lock).exists()
    writer.submit(b"after close")  # ignored: the supervisor removes the lock next
    assert lock.read_bytes() == b"third"


def test_a_failed_write_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    done: list[OSError | None] = []
    writer = LockWriter(lambda: tmp_path / "missing" / "k.lock", done.append)
    writer.submit(b"x")
    assert writer.close(timeout=T)
    assert len(done) == 1 and isinstance(done[0], FileNotFoundError)
    assert list(tmp_path.iterdir()) == []


def _cell(kc: BlockingKernelClient, code: str) -> dict[str, Any]:
    """Run a cell to its reply and idle (jupyter_client's own wait)."""
    reply = kc.execute_interactive(code, timeout=T, output_hook=lambda msg: None)
    return reply["content"]


def test_cells_are_answered_while_the_lock_rewrite_waits(start_kernel, tmp_path: Path) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    fifo: Fifo | None = None
    try:
        kc.wait_for_ready(timeout=T)
        lock = next((tmp_path / "data" / "locks").glob("*.lock"))
        wait_until(lambda: _facts(lock) == (1, "idle"), T, "the lock saying: one client, idle")
        fifo = Fifo(atomic_tmp(lock, proc.pid))
        # Busy for longer than the lock's REFRESH: the rewrite to busy starts, and
        # hangs in open() on the FIFO; the old loop hung with it, and this reply never came.
        assert _cell(kc, "import time; time.sleep(1)")["status"] == "ok"
        assert _cell(kc, "x = 1")["status"] == "ok"
        assert _cell(kc, "print(x)")["status"] == "ok"
        assert stat.S_ISFIFO(atomic_tmp(lock, proc.pid).stat().st_mode)  # still held
        fifo.release()
        wait_until(fifo.read_all, T, "the held rewrite through the FIFO")
        assert json.loads(fifo.data)["activity"] == "busy"
        # The FIFO is the lock now; the newer version (idle) replaces it once free.
        wait_until(
            lambda: stat.S_ISREG(lock.stat().st_mode) and _facts(lock) == (1, "idle"),
            T,
            "a regular lock file saying idle",
        )
        assert not atomic_tmp(lock, proc.pid).exists()
        kc.shutdown()
        assert proc.wait(timeout=T) == 0
        assert not lock.exists()  # the clean stop removed it, and no late write came back
    finally:
        kc.stop_channels()
        if fifo is not None:
            fifo.close()


def _facts(lock: Path) -> tuple[int, str]:
    """(clients, activity) as the lock file says (a FIFO is never opened)."""
    if not stat.S_ISREG(lock.stat().st_mode):
        return (-1, "")
    data = json.loads(lock.read_text())
    return data["clients"], data["activity"]


def test_close_waits_for_the_pending_write(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    gate = threading.Event()
    writer = LockWriter(lambda: gate.wait(T) and lock, lambda error: None)
    writer.submit(b"last")
    closing = threading.Thread(target=writer.close, args=(T,))
    closing.start()
    assert not lock.exists()
    gate.set()
    closing.join(T)
    assert lock.read_bytes() == b"last"
