"""The supervisor<->worker pipes: framing (pure), the socket ends, and the live kernel
pushing more through them than a socket buffer holds, both ways."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import psutil
import pytest
from conftest import IPYTUI_ARGV
from hypothesis import given
from hypothesis import strategies as st
from ipytui.kernel.protocol import pipeframe
from ipytui.kernel.protocol.pipeframe import Decoder, FrameError, encode
from ipytui.kernel.supervisor import pipe_end
from ipytui.kernel.worker import pipe

T = 60.0

messages = st.lists(st.lists(st.binary(max_size=300), max_size=6), min_size=1, max_size=8)


@given(messages, st.lists(st.integers(min_value=1, max_value=97), min_size=1))
def test_any_cut_of_the_stream_gives_the_messages_back(msgs: list[list[bytes]],
                                                       cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in msgs)
    decoder, got, pos, i = Decoder(), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got.extend(decoder.feed(stream[pos : pos + step]))
        pos, i = pos + step, i + 1
    assert got == msgs and decoder.pending == 0


def test_a_partial_message_waits_for_the_rest() -> None:
    data = encode([b"shell", b"x" * 1000])
    decoder = Decoder()
    assert decoder.feed(data[:500]) == [] and decoder.pending == 500
    assert decoder.feed(data[500:]) == [[b"shell", b"x" * 1000]]


def test_garbage_is_refused() -> None:
    with pytest.raises(FrameError):
        Decoder().feed(b"\xff\xff\xff\xff")


def test_supervisor_end_queues_what_the_worker_has_not_read(tmp_path: Path) -> None:
    """The supervisor never blocks: a send the socket cannot take waits in its end."""
    listener = pipe_end.listen(str(tmp_path / "pipe"))
    worker = pipe.WorkerPipe(str(tmp_path / "pipe"), "exec")
    (end,) = pipe_end.accept(listener)
    assert pipe_end.parse_hello(end.read()[0]) == {"pid": os.getpid(), "role": "exec"}
    big = [b"shell", b"y" * (4 << 20)]
    assert end.send(big) and end.wants_write  # 4 MiB: more than the socket buffer
    received: list[list[bytes] | None] = []
    reader = threading.Thread(target=lambda: received.append(worker.recv_multipart()))
    reader.start()
    while end.wants_write:
        assert end.flush()
    reader.join(T)
    assert received == [big]
    worker.abandon()
    assert end.read() == [] and end.closed
    assert not end.send([b"late"])
    end.close()
    listener.close()


def test_a_hello_must_name_a_known_role() -> None:
    assert pipe_end.parse_hello([b"hello", b'{"pid": 1, "role": "up"}']) == {"pid": 1, "role": "up"}
    assert pipe_end.parse_hello([b"hello", b'{"pid": 1, "role": "root"}']) is None
    assert pipe_end.parse_hello([b"hello", b"not json"]) is None
    assert pipe_end.parse_hello([b"shell", b"{}"]) is None


async def test_executes_beyond_the_pipe_buffer_all_run_in_order(start_kernel, make_client) -> None:
    """Queued behind a running cell, 3 MiB of executes wait in the supervisor, then all run."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    await client.execute("seen = []", timeout=T)
    first = asyncio.ensure_future(client.execute("import time; time.sleep(1)", timeout=T))
    filler = "#" + "f" * 30_000
    cells = [client.execute(f"seen.append({i})  {filler}", timeout=T) for i in range(100)]
    results = await asyncio.gather(first, *cells)
    assert [r.status for r in results] == ["ok"] * 101
    check = await client.execute("print(seen == list(range(100)))", timeout=T)
    assert check.text == "True\n"


async def test_output_larger_than_the_pipe_buffer_arrives_whole(start_kernel, make_client) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    result = await client.execute("print('z' * 5_000_000)", timeout=T)
    assert result.status == "ok"
    assert result.text == "z" * 5_000_000 + "\n"


async def test_a_stranger_on_the_pipe_socket_is_turned_away(start_kernel, make_client) -> None:
    """Only the current worker's pid may claim a pipe; anything else is closed."""
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    # Ask the kernel, not the process table: right after the ports open the worker
    # may still be between fork and exec, wearing the supervisor's command line.
    worker = psutil.Process((await client.kernel_info(timeout=T))["ipytui"]["worker_pid"])
    path = next(c.laddr for c in psutil.Process(proc.pid).net_connections("unix")
                if c.laddr and c.laddr.endswith("/pipe"))
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stranger.connect(path)
    stranger.sendall(encode([b"hello", b'{"pid": 1, "role": "up"}']))
    stranger.settimeout(T)
    assert stranger.recv(10) == b""  # closed by the supervisor
    assert worker.is_running()
    assert (await client.execute("print(6 * 7)", timeout=T)).text == "42\n"



class _Recorder:
    """A stand-in for the worker's up pipe: remembers each write."""

    def __init__(self) -> None:
        self.writes: list[list[list[bytes]]] = []

    def send_multipart(self, frames: list[bytes]) -> None:
        self.writes.append([frames])

    def send_many(self, messages: list[list[bytes]]) -> None:
        self.writes.append(messages)


def test_together_writes_once_and_keeps_other_threads_behind() -> None:
    from ipytui.kernel.protocol.wire import Codec
    from ipytui.kernel.worker.publisher import Publisher

    up = _Recorder()
    pub = Publisher(up, Codec(b"key"))  # type: ignore[arg-type]
    other = threading.Thread(target=pub.send, args=("iopub", "stream", {"text": "x"}))
    with pub.together():
        pub.send("shell", "execute_reply", {"status": "ok"})
        other.start()
        other.join(0.2)
        assert other.is_alive()  # it waits for the block instead of cutting in
        pub.status("idle", None)
        pub.sup({"event": "cell_done"})  # the books leave after the reply, in the same write
    other.join(T)
    assert [[m[0] for m in write] for write in up.writes] == [[b"shell", b"iopub", b"sup"], [b"iopub"]]
    assert up.writes[0][2][1] == b'{"event": "cell_done"}'
    assert up.writes[1][0][1] == b"stream"


async def test_a_forked_child_printing_does_not_garble_the_pipe(start_kernel, make_client) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    code = ("import os, sys\npid = os.fork()\nif pid == 0:\n    print('child')\n"
            "    sys.stdout.flush()\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('parent')")
    result = await client.execute(code, timeout=T)
    assert result.status == "ok" and result.text == "parent\n"
    assert (await client.execute("print(6 * 7)", timeout=T)).text == "42\n"


async def test_a_garbled_pipe_is_a_crash_not_a_hang(start_kernel, make_client) -> None:
    """Bytes that are not a framed message end the worker; the cell gets KernelDied."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    await client.execute("kept = 'before'", timeout=T)
    garble = ("import gc\nfrom ipytui.kernel.worker.pipe import WorkerPipe\n"
              "up = next(p for p in gc.get_objects() if isinstance(p, WorkerPipe) and p.role == 'up')\n"
              "up.sock.sendall(b'\\xff' * 8)\nimport time\ntime.sleep(30)")
    result = await client.execute(garble, timeout=T)
    assert result.status == "error" and result.error[0] == "KernelDied"
    assert (await client.execute("print(kept)", timeout=T)).text == "before\n"


async def test_interrupts_during_large_outputs_never_tear_a_message(start_kernel, make_client) -> None:
    """SIGINT lands while the main thread writes megabytes to the pipe: the cell gets
    KeyboardInterrupt, never a garbled pipe (KernelDied) or a hang."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    await client.execute("big = 'y' * 20_000_000", timeout=T)
    cell = asyncio.ensure_future(client.execute("while True:\n    display(big)", timeout=T))
    while not cell.done():
        await client.interrupt(timeout=T)
        await asyncio.wait({cell}, timeout=0.005)
    result = cell.result()
    assert result.status == "error" and result.error[0] == "KeyboardInterrupt", result.error
    assert (await client.execute("print(len(big))", timeout=T)).text == "20000000\n"


def test_a_signal_during_a_write_waits_for_the_whole_message(tmp_path: Path) -> None:
    """The worker's SIGINT handler defers while ``writing`` is set; ``after_write`` then
    raises. Here a slow reader makes sendall write in pieces and a signal lands mid-way."""
    import signal

    listener = pipe_end.listen(str(tmp_path / "pipe"))
    worker = pipe.WorkerPipe(str(tmp_path / "pipe"), "up")
    (end,) = pipe_end.accept(listener)
    assert pipe_end.parse_hello(end.read()[0]) is not None  # the hello is not part of the test
    end.sock.setblocking(True)
    deferred: list[bool] = []

    def on_signal(signum, frame):  # the worker's rule, on a harmless signal
        if worker.writing:
            deferred.append(True)
            return
        raise KeyboardInterrupt

    def after_write() -> None:
        if deferred:
            raise KeyboardInterrupt

    worker.after_write = after_write
    received: list[list[bytes]] = []

    def slow_reader() -> None:
        decoder = pipeframe.Decoder()
        first = True
        while len(received) < 2:
            data = end.sock.recv(65536)
            if first:
                os.kill(os.getpid(), signal.SIGUSR1)  # lands while the writer is blocked
                first = False
            received.extend(decoder.feed(data))

    old = signal.signal(signal.SIGUSR1, on_signal)
    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        big = [b"iopub", b"z" * (8 << 20)]
        with pytest.raises(KeyboardInterrupt):
            worker.send_multipart(big)
        assert deferred == [True]
        worker.after_write = None
        worker.send_multipart([b"iopub", b"after"])
        reader.join(T)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert received[1] == [b"iopub", b"after"] and received[0] == big  # whole, in order
    worker.abandon()
    end.close()
    listener.close()
