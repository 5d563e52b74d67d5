"""An IOPub subscriber that never reads must not cost the supervisor unbounded memory,
nor cost a reading client any of its output.

A raw ZeroMQ SUB connects and subscribes, then never calls recv while a cell
prints 200 000 lines of 1 KB (200 MB). The supervisor's high-water marks
drop what the stalled subscriber cannot take (as ZeroMQ's PUB does), so its
RSS stays within a generous bound over the baseline; the client that reads
gets every line.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import pytest
import zmq
from conftest import IPYTUI_ARGV, wait_until
from jupyter_client.blocking.client import BlockingKernelClient

pytestmark = pytest.mark.timeout(300)

T = 120.0
LINES = 200_000
BOUND = 200 * 2**20  # bytes over the baseline: a bound, not a measurement (see benchmarks/)
CELL = f"for i in range({LINES}):\n    print(f'{{i:07d}}' + 'x' * 1016)"


class PeakRss(threading.Thread):
    """The highest RSS of a process while it runs (sampled)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def run_collecting(kc: BlockingKernelClient, code: str) -> tuple[dict[str, Any], str]:
    """Execute; returns (reply content, all stdout text of the cell)."""
    msg_id = kc.execute(code)
    chunks = []
    while True:
        msg = kc.get_iopub_msg(timeout=T)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            chunks.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=T)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], "".join(chunks)


def test_a_stalled_subscriber_costs_bounded_memory(start_kernel) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    ctx = zmq.Context()
    stalled = ctx.socket(zmq.SUB)
    stalled.rcvhwm = 1  # take as little as possible: the rest backs up toward the kernel
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(f"{info.transport}://{info.ip}:{info.port('iopub')}")
    try:
        kc.wait_for_ready(timeout=T)
        supervisor = psutil.Process(proc.pid)
        # The stalled SUB is connected once the kernel greets it (XPUB welcome).
        wait_until(lambda: stalled.poll(0) != 0, T, "the stalled subscriber's welcome")
        assert run_collecting(kc, "print('warm')")[0]["status"] == "ok"
        baseline = supervisor.memory_info().rss
        peak = PeakRss(proc.pid)
        peak.start()
        try:
            content, text = run_collecting(kc, CELL)
        finally:
            peak.done.set()
            peak.join()
        assert content["status"] == "ok", content
        lines = text.splitlines()
        assert len(lines) == LINES  # the reading client lost nothing
        assert lines[0].startswith("0000000x") and lines[-1].startswith(f"{LINES - 1:07d}x")
        grown = max(peak.peak, supervisor.memory_info().rss) - baseline
        assert grown < BOUND, f"supervisor RSS grew by {grown / 2**20:.0f} MiB"
        assert run_collecting(kc, "print('still here')")[1] == "still here\n"
    finally:
        stalled.close(linger=0)
        ctx.term()
        kc.stop_channels()
