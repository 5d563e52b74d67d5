"""The asyncio client (zmq.asyncio) that the TUI and the tests use to talk to a kernel.

One recv task per socket decodes with the pure :class:`~ipytui.kernel.protocol.wire.Codec`
and dispatches: shell/control replies to futures keyed by the request's msg_id,
iopub messages to subscriber queues and to pending ``execute`` trackers, stdin
``input_request`` to :attr:`KernelClient.input_handler`. A heartbeat task keeps
:attr:`KernelClient.heartbeat_ok` current. Bad messages are logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio
from ipytui.kernel.client.requests import RequestMethods
from ipytui.kernel.client.results import (
    ClientStopped,
    ExecuteResult,
    ExecuteTracker,
    IopubSubscription,
)
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.wire import Codec, Message, WireError, new_id
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

REQUEST_CHANNELS = ("shell", "control", "stdin")
HB_MISSES_ALLOWED = 3

InputHandler = Callable[[str, bool], Awaitable[str]]


class KernelClient(RequestMethods):
    """Speaks the Jupyter protocol to one kernel over its five channels.

    ``input_handler(prompt, password) -> answer`` answers input_request on
    stdin. If it is None, the request is logged and NOT answered (sending ""
    would silently feed user code a wrong value); the kernel keeps waiting
    until it is interrupted. The same holds if the handler raises.
    """

    def __init__(
        self,
        info: ConnectionInfo,
        *,
        username: str | None = None,
        session: str | None = None,
        context: zmq.asyncio.Context | None = None,
        hb_interval: float = 1.0,
    ) -> None:
        self.info = info
        self.codec = Codec(info.key, info.signature_scheme, session=session, username=username)
        self.hb_interval = hb_interval
        # shell and stdin share it, so the kernel routes input_request to us.
        self.identity = new_id().encode("ascii")
        self.input_handler: InputHandler | None = None
        self.on_heartbeat: Callable[[bool], None] | None = None
        self.last_kernel_status = "unknown"
        self._own_context = context is None
        self._context = context or zmq.asyncio.Context()
        self._curve_keys: tuple[bytes, bytes] | None = None
        if info.curve_serverkey:
            if info.curve_publickey and info.curve_secretkey:
                self._curve_keys = (info.curve_publickey.encode(), info.curve_secretkey.encode())
            else:
                self._curve_keys = zmq.curve_keypair()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._executes: dict[str, ExecuteTracker] = {}
        self._subscribers: set[asyncio.Queue[Message | None]] = set()
        self._iopub_seen = asyncio.Event()
        self._stdin_connected = asyncio.Event()
        self._stdin_monitor: zmq.asyncio.Socket | None = None
        self._heartbeat_ok = False
        self._started = False
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------
    def _socket(self, kind: int, channel: str) -> zmq.asyncio.Socket:
        sock = self._context.socket(kind)
        sock.linger = 0
        if self._curve_keys is not None:
            assert self.info.curve_serverkey
            sock.curve_serverkey = self.info.curve_serverkey.encode()
            sock.curve_publickey, sock.curve_secretkey = self._curve_keys
        if channel in ("shell", "stdin"):
            sock.identity = self.identity
        if channel == "stdin":
            # Before connect, so the handshake event cannot be missed.
            events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
            self._stdin_monitor = sock.get_monitor_socket(events)
        if kind == zmq.SUB:
            sock.subscribe(b"")
        sock.connect(self.info.url(channel))
        return sock

    async def start(self) -> None:
        """Connect all channels and start the recv loops and the heartbeat."""
        if self._started:
            return
        self._started = True
        for channel in REQUEST_CHANNELS:
            self._sockets[channel] = self._socket(zmq.DEALER, channel)
        self._sockets["iopub"] = self._socket(zmq.SUB, "iopub")
        handlers = {
            "shell": self._on_reply,
            "control": self._on_reply,
            "stdin": self._on_stdin,
            "iopub": self._on_iopub,
        }
        for channel, handler in handlers.items():
            self._spawn(self._recv_loop(channel, handler))
        self._spawn(self._heartbeat_loop())
        self._spawn(self._watch_stdin())

    async def stop(self) -> None:
        """Cancel tasks, fail waiting requests, end subscriptions, close sockets."""
        if self._stopped:
            return
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ClientStopped("client stopped"))
        for tracker in self._executes.values():
            tracker.idle.set()  # execute() sees _stopped and raises ClientStopped
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._sockets.clear()
        if self._own_context:
            self._context.destroy(linger=0)

    async def __aenter__(self) -> KernelClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving ------------------------------------------------------------
    async def _recv_loop(self, channel: str, handler: Callable[[Message], None]) -> None:
        sock = self._sockets[channel]
        while True:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError as exc:
                log.error("%s channel closed: %s", channel, exc)
                return
            try:
                msg = self.codec.deserialize(frames)
            except WireError as exc:
                log.warning("dropped a bad %s message: %s", channel, exc)
                continue
            try:
                handler(msg)
            except Exception:
                log.exception("handling a %s %s failed", channel, msg.msg_type)

    async def _watch_stdin(self) -> None:
        """Track the stdin connection: the kernel's ROUTER drops an input_request
        addressed to an identity that has not connected yet, hanging the cell."""
        monitor = self._stdin_monitor
        assert monitor is not None
        try:
            while True:
                event = await recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._stdin_connected.set()
                else:
                    self._stdin_connected.clear()
        finally:
            monitor.close(linger=0)

    def _on_reply(self, msg: Message) -> None:
        fut = self._pending.get(msg.parent_id)
        if fut is None or fut.done():
            log.debug("unclaimed %s (parent %s)", msg.msg_type, msg.parent_id)
            return
        fut.set_result(msg)

    def _on_iopub(self, msg: Message) -> None:
        if msg.msg_type == "status":
            self.last_kernel_status = msg.content.get("execution_state", self.last_kernel_status)
        self._iopub_seen.set()
        tracker = self._executes.get(msg.parent_id)
        if tracker is not None:
            tracker.feed(msg)
        for queue in self._subscribers:
            queue.put_nowait(msg)

    def _on_stdin(self, msg: Message) -> None:
        if msg.msg_type != "input_request":
            log.debug("ignored stdin %s", msg.msg_type)
            return
        if self.input_handler is None:
            log.warning("input_request %r left unanswered: no input_handler set",
                        msg.content.get("prompt", ""))
            return
        self._spawn(self._answer_input(self.input_handler, msg))

    async def _answer_input(self, handler: InputHandler, request: Message) -> None:
        prompt = str(request.content.get("prompt", ""))
        password = bool(request.content.get("password", False))
        try:
            value = await handler(prompt, password)
        except Exception:
            log.exception("input_handler failed; input_request %r left unanswered", prompt)
            return
        reply = self.codec.msg("input_reply", {"value": value}, parent=request)
        self._send_msg("stdin", reply)

    def iopub_messages(self) -> IopubSubscription:
        """Every iopub message from now on; use ``async for msg in client.iopub_messages()``."""
        return IopubSubscription(self._subscribers, ended=self._stopped)

    # -- heartbeat ------------------------------------------------------------
    @property
    def heartbeat_ok(self) -> bool:
        """True once the kernel answered a ping; False after 3 missed beats."""
        return self._heartbeat_ok

    def _set_heartbeat(self, ok: bool) -> None:
        if ok == self._heartbeat_ok:
            return
        self._heartbeat_ok = ok
        if self.on_heartbeat is not None:
            try:
                self.on_heartbeat(ok)
            except Exception:
                log.exception("on_heartbeat callback failed")

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self._socket(zmq.REQ, "hb")
        misses = 0
        try:
            while True:
                sent = loop.time()
                await sock.send(b"ping")
                if await sock.poll(self.hb_interval * 1000):
                    await sock.recv()
                    misses = 0
                    self._set_heartbeat(True)
                    await asyncio.sleep(max(0.0, self.hb_interval - (loop.time() - sent)))
                    continue
                # A REQ socket that got no answer cannot send again: start afresh.
                sock.close(linger=0)
                sock = self._socket(zmq.REQ, "hb")
                misses += 1
                if misses >= HB_MISSES_ALLOWED:
                    self._set_heartbeat(False)
        finally:
            sock.close(linger=0)

    # -- sending --------------------------------------------------------------
    def _send_msg(self, channel: str, msg: Message) -> None:
        if channel not in REQUEST_CHANNELS:
            raise ValueError(f"cannot send on channel {channel!r}; use one of {REQUEST_CHANNELS}")
        sock = self._sockets.get(channel)
        if sock is None:
            raise RuntimeError("client is not started" if not self._stopped else "client stopped")
        sent = sock.send_multipart(self.codec.serialize(msg))
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(_log_send_failure)

    def send(self, channel: str, msg_type: str, content: dict[str, Any] | None = None,
             metadata: dict[str, Any] | None = None) -> Message:
        """Send without waiting for a reply; returns the sent message (its msg_id)."""
        msg = self.codec.msg(msg_type, content, metadata=metadata)
        self._send_msg(channel, msg)
        return msg

    async def request(self, channel: str, msg_type: str, content: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Message:
        """Send and await the reply parented to it; TimeoutError after ``timeout`` seconds."""
        msg = self.codec.msg(msg_type, content)
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg.msg_id] = fut
        try:
            self._send_msg(channel, msg)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(msg.msg_id, None)

    async def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = True,
        stop_on_error: bool = True,
        timeout: float | None = None,
        on_iopub: Callable[[Message], None] | None = None,
    ) -> ExecuteResult:
        """Run code; returns once BOTH the execute_reply and its idle status arrived.

        ``on_iopub`` sees every iopub message parented to this request as it
        arrives (status and execute_input included), for live display.
        """
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        msg = self.codec.msg("execute_request", content)
        tracker = ExecuteTracker(on_iopub)
        fut = asyncio.get_running_loop().create_future()
        self._executes[msg.msg_id] = tracker
        self._pending[msg.msg_id] = fut

        async def reply_and_idle() -> Message:
            reply = await fut
            await tracker.idle.wait()
            if self._stopped:
                raise ClientStopped("client stopped")
            return reply

        try:
            self._send_msg("shell", msg)
            reply = await asyncio.wait_for(reply_and_idle(), timeout)
        finally:
            self._pending.pop(msg.msg_id, None)
            self._executes.pop(msg.msg_id, None)
        return ExecuteResult(reply, tracker.outputs)

    # -- convenience requests (each returns the reply content) ----------------
    async def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        """Repeat kernel_info until one is answered, iopub delivered a message
        and stdin is connected.

        All three are needed: the shell can be up while our iopub subscription
        has not reached the kernel yet (slow joiner: outputs would be lost) or
        stdin is still reconnecting (an input_request would be dropped).
        """

        async def attempt() -> dict[str, Any]:
            while True:
                try:
                    reply = await self.kernel_info(timeout=1.0)
                    await asyncio.wait_for(self._iopub_seen.wait(), 0.5)
                    await asyncio.wait_for(self._stdin_connected.wait(), 0.5)
                    return reply
                except asyncio.TimeoutError:
                    continue

        return await asyncio.wait_for(attempt(), timeout)


def _log_send_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("send failed: %s", fut.exception())


__all__ = ["ClientStopped", "ExecuteResult", "IopubSubscription", "KernelClient"]
