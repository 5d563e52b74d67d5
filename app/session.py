"""KernelSession: the glue between one KernelClient and the screen.

It owns the client, runs as asyncio tasks on Textual's loop, and tells the
screen what happened through app-level messages. IOPub is pumped into
batches, one ``IopubBatch`` per refresh tick, so a burst of thousands of
messages costs the UI one update, not thousands.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from .messages import (
    HeartbeatChanged,
    InputRequested,
    IopubBatch,
    KernelReady,
    KernelUnreachable,
)

log = logging.getLogger("ipytui.app")

BATCH_SECONDS = 0.04
RESTORE_REQUEST = "ipytui_restore_request"


def default_client_factory(info: Any, *, username: str | None = None):
    from ipytui.kernel.client.kernel_client import KernelClient

    return KernelClient(info, username=username)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class KernelSession:
    """One connection to a kernel, on behalf of one screen."""

    def __init__(
        self,
        target: MessagePump,
        info: Any,
        *,
        username: str | None = None,
        client_factory: Callable[..., Any] | None = None,
        batch_seconds: float = BATCH_SECONDS,
    ) -> None:
        self.target = target
        self.info = info
        self.username = username
        self.client_factory = client_factory or default_client_factory
        self.batch_seconds = batch_seconds
        self.client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pump_task: asyncio.Task | None = None
        self._starting: asyncio.Future[None] | None = None
        self._pending: list[Any] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self.closed = False
        # The latest kernel_info content, set as its KernelReady is posted: the
        # screen can show it before that message reaches the front of its queue.
        self.ready_info: dict[str, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.client.codec.session if self.client is not None else ""

    def open(self) -> Any:
        """Make the client (no I/O yet), so its session id is known at once."""
        if self.client is None:
            self.client = self.client_factory(self.info, username=self.username)
            self.client.on_heartbeat = self._on_heartbeat
            self.client.input_handler = self._input_handler
        return self.client

    def connect(self, timeout: float = 30.0) -> asyncio.Future[None]:
        """Begin ``start`` in the background (once): the kernel can answer while
        the screen is still being built. ``start`` awaits the same."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start(timeout))
        return self._starting

    async def start(self, timeout: float = 30.0) -> None:
        """Connect, start pumping IOPub, then wait for kernel_info (posts KernelReady)."""
        await self.connect(timeout)

    async def _start(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.open()
        await _maybe_await(self.client.start())
        # Subscribe before the first request so no output of it can be missed.
        subscription = self.client.iopub_messages()
        self._pump_task = asyncio.create_task(self._pump(subscription), name="ipytui-iopub")
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 30.0) -> dict[str, Any] | None:
        try:
            info = await self.client.wait_ready(timeout)
        except Exception as exc:  # timeout, connection refused, bad key…
            self._post(KernelUnreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")))
            return None
        self.ready_info = info or {}
        self._post(KernelReady(self.ready_info))
        return info

    async def stop(self, *, shutdown: bool = False) -> None:
        """Disconnect; with ``shutdown`` the kernel is asked to exit first."""
        if self.closed:
            return
        self.closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self.client is not None and shutdown:
            try:
                await asyncio.wait_for(_maybe_await(self.client.shutdown(restart=False)), 5)
            except Exception as exc:
                log.warning("shutdown request failed: %s", exc)
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self.client is not None:
            await _maybe_await(self.client.stop())

    # -- IOPub -------------------------------------------------------------------------
    async def _pump(self, subscription: Any) -> None:
        try:
            async for msg in subscription:
                self._pending.append(msg)
                if self._flush_handle is None:
                    self._flush_handle = self._loop.call_later(self.batch_seconds, self._flush)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("IOPub pump stopped")

    def _flush(self) -> None:
        self._flush_handle = None
        batch, self._pending = self._pending, []
        if batch:
            self._post(IopubBatch(batch))

    def _on_heartbeat(self, ok: bool) -> None:
        # The client may call this from its heartbeat thread: hop onto the loop.
        if self._loop is not None and not self.closed:
            self._loop.call_soon_threadsafe(self._post, HeartbeatChanged(bool(ok)))

    async def _input_handler(self, prompt: str, password: bool) -> str:
        """input() in a cell we ran: the screen answers through the future."""
        future = asyncio.get_running_loop().create_future()
        self._post(InputRequested(prompt, password, future))
        return await future

    def _post(self, message: Message) -> None:
        if not self.closed or isinstance(message, IopubBatch):
            self.target.post_message(message)

    # -- requests ------------------------------------------------------------------------
    async def execute(self, code: str, on_iopub: Callable[[Any], None] | None = None) -> Any:
        return await self.client.execute(
            code, silent=False, store_history=True, allow_stdin=True, on_iopub=on_iopub
        )

    async def complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        return await self.client.complete(code, cursor_pos)

    async def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> dict[str, Any]:
        return await self.client.inspect(code, cursor_pos, detail_level)

    async def is_complete(self, code: str) -> dict[str, Any]:
        return await self.client.is_complete(code)

    async def history_tail(self, n: int = 1000) -> list[str]:
        """Inputs from the kernel's history, oldest first, across sessions."""
        reply = await self.client.history(
            hist_access_type="tail", n=n, output=False, raw=True, unique=False
        )
        entries = []
        for item in reply.get("history") or []:
            if isinstance(item, (list, tuple)) and len(item) >= 3 and isinstance(item[2], str):
                entries.append(item[2])
        return entries

    def comm_open(self, comm_id: str, target: str, data: dict[str, Any]) -> bool:
        """Open a comm (no reply expected); False when this client cannot send."""
        return self._send("comm_open", {"comm_id": comm_id, "target_name": target, "data": data})

    def comm_send(self, comm_id: str, data: dict[str, Any]) -> bool:
        return self._send("comm_msg", {"comm_id": comm_id, "data": data})

    def _send(self, msg_type: str, content: dict[str, Any]) -> bool:
        send = getattr(self.client, "send", None)
        if self.closed or not callable(send):
            return False
        try:
            send("shell", msg_type, content)
        except Exception as exc:  # not started, stopped, socket gone
            log.debug("%s not sent: %s", msg_type, exc)
            return False
        return True

    async def kernel_info(self) -> dict[str, Any]:
        return await self.client.kernel_info()

    async def usage(self, timeout: float = 2.0) -> dict[str, Any]:
        """usage_request (pid, memory), which ipykernel answers; {} when unsupported."""
        request = getattr(self.client, "request", None)
        if not callable(request):
            return {}
        reply = await request("control", "usage_request", {}, timeout=timeout)
        content = getattr(reply, "content", reply)
        return content if content.get("status", "ok") != "error" else {}

    async def interrupt(self) -> Any:
        return await _maybe_await(self.client.interrupt())

    async def restart(self) -> Any:
        return await _maybe_await(self.client.shutdown(restart=True))

    async def restore(self) -> Any:
        """Ask the kernel to restart back to its latest snapshot (an ipytui extension)."""
        for name in ("restore", "restart_and_restore"):
            method = getattr(self.client, name, None)
            if callable(method):
                return await _maybe_await(method())
        request = getattr(self.client, "request", None)
        if not callable(request):
            raise NotImplementedError("this client cannot send ipytui_restore_request")
        return await request("control", RESTORE_REQUEST, {})

    @property
    def heartbeat_ok(self) -> bool | None:
        return getattr(self.client, "heartbeat_ok", None) if self.client is not None else None
