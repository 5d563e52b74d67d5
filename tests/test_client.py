"""KernelClient against a real kernel process (ipykernel until ours exists),
plus in-process fake servers for what a real kernel never sends (bad frames)
or does not support (CurveZMQ)."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import zmq
import zmq.asyncio
from ipytui.kernel.client.kernel_client import ClientStopped, KernelClient
from ipytui.kernel.protocol.connection import ConnectionInfo, new_connection_info
from ipytui.kernel.protocol.wire import Codec, Message

KernelProcess = tuple[ConnectionInfo, "subprocess.Popen[bytes]"]

pytestmark = pytest.mark.timeout(30)


async def next_matching(sub: Any, pred: Callable[[Message], bool], timeout: float = 5) -> Message:
    """The first message from an iopub subscription for which pred holds."""

    async def scan() -> Message:
        async for msg in sub:
            if pred(msg):
                return msg
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(scan(), timeout)


async def test_execute_waits_for_reply_and_idle(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    seen: list[Message] = []
    result = await client.execute("print('hi'); 6 * 7", on_iopub=seen.append, timeout=5)
    assert result.status == "ok"
    assert result.reply.msg_type == "execute_reply"
    assert isinstance(result.execution_count, int) and result.execution_count >= 1
    assert result.text == "hi\n"
    assert result.data is not None and result.data["text/plain"] == "42"
    assert result.error is None
    types = [m.msg_type for m in result.outputs]
    assert types == ["stream", "execute_result"]
    parent = result.reply.parent_id
    assert all(m.parent_id == parent for m in seen)
    # The idle for this request had arrived by the time execute() returned.
    assert [m.content["execution_state"] for m in seen if m.msg_type == "status"] == ["busy", "idle"]
    assert seen[1].msg_type == "execute_input"
    assert client.last_kernel_status == "idle"
    again = await client.execute("1", timeout=5)
    assert again.execution_count == result.execution_count + 1


async def test_error_reply(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    result = await client.execute("1/0", timeout=5)
    assert result.status == "error"
    assert result.error == ("ZeroDivisionError", "division by zero")
    errors = [m for m in result.outputs if m.msg_type == "error"]
    assert len(errors) == 1 and errors[0].content["traceback"]


async def test_input_round_trip(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    asked: list[tuple[str, bool]] = []

    async def answer(prompt: str, password: bool) -> str:
        asked.append((prompt, password))
        return "secret" if password else "world"

    client.input_handler = answer
    code = "import getpass\nx = input('name? ')\ny = getpass.getpass('pw: ')\nprint(x.upper(), y[::-1])"
    result = await client.execute(code, timeout=5)
    assert result.status == "ok", result.error
    assert asked == [("name? ", False), ("pw: ", True)]
    assert "WORLD terces" in result.text


async def test_input_without_handler_is_logged_not_answered(
    kernel: KernelProcess, make_client, interrupt_by_signal: bool
) -> None:
    info, proc = kernel
    client = await make_client(info)
    warned = asyncio.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "left unanswered" in record.getMessage():
                warned.set()

    flag = Flag(logging.WARNING)
    logging.getLogger("ipytui.kernel.client.kernel_client").addHandler(flag)
    try:
        running = asyncio.ensure_future(client.execute("input('never? ')", timeout=8))
        await asyncio.wait_for(warned.wait(), 5)
        assert not running.done()
        if interrupt_by_signal:
            proc.send_signal(signal.SIGINT)
        else:
            await client.interrupt(timeout=5)
        result = await asyncio.wait_for(running, 5)
    finally:
        logging.getLogger("ipytui.kernel.client.kernel_client").removeHandler(flag)
    assert result.status == "error"


async def test_shell_requests(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    info = await client.kernel_info(timeout=5)
    assert info["status"] == "ok"
    assert info["language_info"]["name"] == "python"
    assert info["protocol_version"].startswith("5.")

    await client.execute("alpha_beta = 3", timeout=5)
    completion = await client.complete("alpha_b", timeout=5)
    assert completion["status"] == "ok"
    assert "alpha_beta" in completion["matches"]
    assert completion["cursor_end"] == len("alpha_b")

    inspected = await client.inspect("len", timeout=5)
    assert inspected["status"] == "ok" and inspected["found"] is True
    assert "text/plain" in inspected["data"]

    assert (await client.is_complete("x = 1", timeout=5))["status"] == "complete"
    incomplete = await client.is_complete("for i in range(3):", timeout=5)
    assert incomplete["status"] == "incomplete"
    assert (await client.is_complete("x = )", timeout=5))["status"] == "invalid"

    comms = await client.comm_info(timeout=5)
    assert comms["status"] == "ok" and comms["comms"] == {}


async def test_two_clients_share_iopub(kernel: KernelProcess, make_client) -> None:
    first = await make_client(kernel[0])
    second = await make_client(kernel[0])
    assert first.codec.session != second.codec.session
    watch_second = second.iopub_messages()
    watch_first = first.iopub_messages()

    await first.execute("print('from first')", timeout=5)
    seen = await next_matching(watch_second, lambda m: m.msg_type == "stream")
    assert seen.content["text"] == "from first\n"
    assert seen.parent_header["session"] == first.codec.session

    await second.execute("print('from second')", timeout=5)
    seen = await next_matching(watch_first, lambda m: m.msg_type == "stream"
                               and m.parent_header["session"] == second.codec.session)
    assert seen.content["text"] == "from second\n"


async def test_subscription_lifecycle(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    async with client.iopub_messages() as sub:
        assert len(client._subscribers) == 1
        result = await client.execute("print('x')", timeout=5)
        got = await next_matching(sub, lambda m: m.parent_id == result.reply.parent_id
                                  and m.msg_type == "stream")
        assert got.content["text"] == "x\n"
    assert client._subscribers == set()
    ended = client.iopub_messages()
    await client.stop()
    assert [m async for m in ended] == []


async def test_interrupt_sleep(kernel: KernelProcess, make_client, interrupt_by_signal: bool) -> None:
    info, proc = kernel
    client = await make_client(info)
    started = asyncio.Event()

    def watch(msg: Message) -> None:
        if msg.msg_type == "stream" and "sleeping" in msg.content.get("text", ""):
            started.set()

    t0 = time.monotonic()
    running = asyncio.ensure_future(client.execute(
        "import time\nprint('sleeping', flush=True)\ntime.sleep(30)", on_iopub=watch, timeout=15))
    await asyncio.wait_for(started.wait(), 5)
    if interrupt_by_signal:
        proc.send_signal(signal.SIGINT)
    else:
        assert (await client.interrupt(timeout=5))["status"] == "ok"
    result = await asyncio.wait_for(running, 5)
    assert result.status == "error"
    assert result.error is not None and result.error[0] == "KeyboardInterrupt"
    assert time.monotonic() - t0 < 15
    assert (await client.execute("'alive'", timeout=5)).data == {"text/plain": "'alive'"}


async def test_timeout_cleans_up(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    with pytest.raises(asyncio.TimeoutError):
        await client.execute("import time; time.sleep(1)", timeout=0.1)
    assert client._pending == {} and client._executes == {}
    # The late reply is dropped; the next request still gets its own reply.
    assert (await client.execute("2 + 2", timeout=5)).data == {"text/plain": "4"}


async def test_shutdown(kernel: KernelProcess, make_client) -> None:
    info, proc = kernel
    client = await make_client(info)
    reply = await client.shutdown(timeout=5)
    assert reply["status"] == "ok" and reply["restart"] is False
    assert await asyncio.to_thread(proc.wait, 8) == 0


async def test_heartbeat_up_then_down(kernel: KernelProcess, make_client) -> None:
    info, proc = kernel
    changes: list[bool] = []
    changed = asyncio.Event()

    def on_hb(ok: bool) -> None:
        changes.append(ok)
        changed.set()

    client = await make_client(info, ready=False, hb_interval=0.2)
    client.on_heartbeat = on_hb
    await asyncio.wait_for(changed.wait(), 8)
    assert client.heartbeat_ok is True and changes == [True]
    changed.clear()
    proc.kill()
    await asyncio.wait_for(changed.wait(), 5)
    assert client.heartbeat_ok is False and changes == [True, False]


async def test_stop_fails_waiting_requests(kernel: KernelProcess, make_client) -> None:
    client = await make_client(kernel[0])
    waiting = asyncio.ensure_future(client.execute("import time; time.sleep(2)"))
    await asyncio.sleep(0)
    assert client._pending
    await client.stop()
    with pytest.raises(ClientStopped):
        await waiting
    await client.stop()  # idempotent
    assert [m async for m in client.iopub_messages()] == []
    with pytest.raises(RuntimeError):
        client.send("shell", "kernel_info_request")


# -- in-process fake servers -----------------------------------------------------

class FakeShell:
    """A ROUTER on the shell port and a PUB on iopub, speaking through a Codec."""

    def __init__(self, ctx: zmq.asyncio.Context, curve_secret: bytes | None = None) -> None:
        self.info = new_connection_info()
        self.codec = Codec(self.info.key, session="fake-kernel")
        self.shell = ctx.socket(zmq.ROUTER)
        self.iopub = ctx.socket(zmq.PUB)
        for sock in (self.shell, self.iopub):
            sock.linger = 0
            if curve_secret is not None:
                sock.curve_secretkey = curve_secret
                sock.curve_server = True
        self.shell.bind(self.info.bind_url("shell"))
        self.iopub.bind(self.info.bind_url("iopub"))

    async def recv(self) -> Message:
        return self.codec.deserialize(await asyncio.wait_for(self.shell.recv_multipart(), 5))


@pytest.fixture
async def zctx():
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


async def test_bad_messages_are_dropped(zctx: zmq.asyncio.Context) -> None:
    fake = FakeShell(zctx)
    async with KernelClient(fake.info) as client:
        sub = client.iopub_messages()
        pending = asyncio.ensure_future(client.request("shell", "kernel_info_request", timeout=5))
        request = await fake.recv()
        ids = request.identities
        good = fake.codec.msg("kernel_info_reply", {"status": "ok"}, parent=request)
        frames = fake.codec.serialize(good, ids)
        forged = [*frames]
        forged[len(ids) + 1] = b"0" * 64
        wrong_parent = fake.codec.msg("kernel_info_reply", {"status": "wrong"}, parent={"msg_id": "x"})
        for bad in ([*ids, b"garbage"], [*ids, b"<IDS|MSG>", b"sig"], forged,
                    fake.codec.serialize(wrong_parent, ids)):
            await fake.shell.send_multipart(bad)
        await fake.shell.send_multipart(frames)
        await fake.shell.send_multipart(frames)  # a replay: dropped, nobody waits anyway
        reply = await pending
        assert reply.content == {"status": "ok"} and reply.parent_id == request.msg_id

        # iopub: publish junk then a real message until the subscription is up.
        async def publish() -> None:
            while True:
                await fake.iopub.send_multipart([b"junk", b"<IDS|MSG>", b"x", b"{}"])
                status = fake.codec.msg("status", {"execution_state": "busy"})
                await fake.iopub.send_multipart(fake.codec.serialize(status))
                await asyncio.sleep(0.05)

        publisher = asyncio.ensure_future(publish())
        try:
            got = await next_matching(sub, lambda m: True)
        finally:
            publisher.cancel()
        assert got.msg_type == "status" and client.last_kernel_status == "busy"
        assert all(not t.done() for t in client._tasks)


async def test_curve_round_trip(zctx: zmq.asyncio.Context) -> None:
    server_public, server_secret = zmq.curve_keypair()
    fake = FakeShell(zctx, curve_secret=server_secret)
    fake.info.curve_serverkey = server_public.decode()
    async with KernelClient(fake.info) as client:
        assert client._sockets["shell"].mechanism == zmq.CURVE
        pending = asyncio.ensure_future(client.kernel_info(timeout=5))
        request = await fake.recv()
        reply = fake.codec.msg("kernel_info_reply", {"status": "ok", "curve": True}, parent=request)
        await fake.shell.send_multipart(fake.codec.serialize(reply, request.identities))
        assert await pending == {"status": "ok", "curve": True}

    # A client with the wrong server key never gets through.
    fake.info.curve_serverkey = zmq.curve_keypair()[0].decode()
    async with KernelClient(fake.info) as client:
        with pytest.raises(asyncio.TimeoutError):
            await client.kernel_info(timeout=0.5)


async def test_stop_ends_execute_waiting_for_idle(zctx: zmq.asyncio.Context) -> None:
    fake = FakeShell(zctx)
    client = KernelClient(fake.info)
    await client.start()
    running = asyncio.ensure_future(client.execute("x"))
    request = await fake.recv()
    reply = fake.codec.msg("execute_reply", {"status": "ok", "execution_count": 1}, parent=request)
    await fake.shell.send_multipart(fake.codec.serialize(reply, request.identities))
    await asyncio.wait_for(asyncio.shield(client._pending[request.msg_id]), 5)
    assert not running.done()  # the reply alone does not finish an execute
    await client.stop()
    with pytest.raises(ClientStopped):
        await asyncio.wait_for(running, 5)
