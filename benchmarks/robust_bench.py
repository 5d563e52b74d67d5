"""Slow readers and interrupts, side by side: what a stalled IOPub subscriber costs
the process that publishes, and how soon an interrupted printing cell falls silent.

- **slow subscriber**: a raw SUB subscribes and never reads (receive queue of
  one message, a 4 KiB socket buffer) while a cell prints N lines of 1 KB; the
  lean client reads everything. Reported: the growth of the publishing
  process's RSS over its baseline (ipytui: the supervisor; ipykernel: the
  kernel), sampled every 20 ms, and the fraction of lines the reading client
  got (correctness next to the figure).
- **interrupt to silence**: a cell prints without end; once output flows the
  interrupt is sent (ipytui: ``interrupt_request`` on control, as its
  kernelspec says; ipykernel: SIGINT, as its kernelspec says) and the time
  until the cell's last message (its idle, or a stream after it) reaches the
  client is taken, listening 0.5 s past the idle. Reported next to whether the cell
  ended with KeyboardInterrupt.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import zmq
from kernel_bench import Add, KernelRun
from procs import Workdir

LINE = "x" * 1016
TAIL = 0.5  # seconds to listen past the interrupted cell's idle for late output


class _PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def _stalled_subscriber(run: KernelRun) -> tuple[zmq.Socket, zmq.Context]:
    """A SUB that takes one message and then never reads; returns once it is subscribed."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.rcvhwm = 1
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    info = run.info
    sock.connect(f"tcp://{info.get('ip') or '127.0.0.1'}:{info['iopub_port']}")
    deadline = time.monotonic() + 30
    while not sock.poll(50):
        if time.monotonic() > deadline:
            raise TimeoutError("the stalled subscriber never got a message")
        run.client.run("pass")
    return sock, ctx


def slow_subscriber(run: KernelRun, add: Add, lines: int) -> None:
    client = run.client
    stalled, ctx = _stalled_subscriber(run)
    try:
        client.run("print('warm')")
        peak = _PeakRss(run.proc.pid)
        baseline = peak.peak
        peak.start()
        msg_id = client.execute(f"for i in range({lines}):\n    print(f'{{i:07d}}{LINE}')")
        client.streams[msg_id] = []
        try:
            _, reply = client.wait_done(msg_id, 600)
        finally:
            peak.done.set()
            peak.join()
        got = "".join(client.streams.pop(msg_id)).count("\n")
        add("slowsub_mem", (peak.peak - baseline) / 2**20)
        add("slowsub_lines", got / lines if reply.get("status") == "ok" else 0.0)
    finally:
        stalled.close(linger=0)
        ctx.term()


class _Tally(list[str]):
    """Counts the stream chunks it is given and keeps none: an endless print loop that
    an interrupt reaches late (a loaded machine) must not fill the client's memory
    (a smoke run under both cores busy grew the client to 24 GiB, then the OOM killer
    took it)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def append(self, _text: str) -> None:
        self.count += 1

    def __len__(self) -> int:
        return self.count


def interrupt_to_silence(run: KernelRun, add: Add) -> None:
    client = run.client
    msg_id = client.execute(f"i = 0\nwhile True:\n    print(str(i) + '{LINE}')\n    i += 1")
    texts = client.streams[msg_id] = _Tally()
    client.wait_for(lambda: len(texts) > 3, 30, "output to flow")
    t0 = time.perf_counter()
    if run.kind == "ipytui":
        client.send("control", "interrupt_request", {})
    else:
        os.kill(run.proc.pid, signal.SIGINT)
    last, seen = t0, len(texts)
    end = None
    while end is None or time.perf_counter() < end:
        client.pump(5)
        if len(texts) != seen:
            last, seen = time.perf_counter(), len(texts)
        if end is None and msg_id in client.replies and msg_id in client.idle:
            last = max(last, client.idle[msg_id])
            end = time.perf_counter() + TAIL
        if time.perf_counter() - t0 > 60:
            raise TimeoutError(f"{run.kind}: the interrupted cell did not end")
    client.replies.pop(msg_id)
    client.idle.pop(msg_id)
    client.streams.pop(msg_id)
    add("interrupt_silence", max(0.0, last - t0) * 1e3)
    error = client.errors.pop(msg_id, {})
    add("interrupt_stopped", float(error.get("ename") == "KeyboardInterrupt"))


def run_robust_rep(kind: str, wd: Workdir, lines: int, add: Add) -> None:
    """Both measurements on one fresh kernel of `kind`."""
    run = KernelRun(kind, wd)
    try:
        run.start(lambda name, value: None)  # start-up is measured by the kernel group
        slow_subscriber(run, add, lines)
        interrupt_to_silence(run, add)
    finally:
        run.stop()
