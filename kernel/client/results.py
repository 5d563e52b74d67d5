"""What the asyncio client hands back: execute results, iopub subscriptions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol.wire import Message

log = logging.getLogger(__name__)


class ClientStopped(RuntimeError):
    """Raised into requests still waiting when the client is stopped."""


@dataclass
class ExecuteResult:
    """The reply to one execute_request plus the iopub output parented to it."""

    reply: Message
    outputs: list[Message] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply.content.get("status", "")

    @property
    def execution_count(self) -> int | None:
        return self.reply.content.get("execution_count")

    @property
    def text(self) -> str:
        """All stream output (stdout and stderr) in arrival order."""
        return "".join(m.content.get("text", "") for m in self.outputs if m.msg_type == "stream")

    @property
    def data(self) -> dict[str, Any] | None:
        """The mime bundle of the execute_result, if the cell produced one."""
        for m in self.outputs:
            if m.msg_type == "execute_result":
                return m.content.get("data", {})
        return None

    @property
    def error(self) -> tuple[str, str] | None:
        """(ename, evalue) from an error reply or an error output, else None."""
        if self.status == "error" and "ename" in self.reply.content:
            return self.reply.content["ename"], self.reply.content.get("evalue", "")
        for m in self.outputs:
            if m.msg_type == "error":
                return m.content.get("ename", ""), m.content.get("evalue", "")
        return None


class ExecuteTracker:
    """Collects the iopub messages of one execute until its idle arrives."""

    def __init__(self, on_iopub: Callable[[Message], None] | None) -> None:
        self.on_iopub = on_iopub
        self.outputs: list[Message] = []
        self.idle = asyncio.Event()

    def feed(self, msg: Message) -> None:
        if msg.msg_type == "status":
            if msg.content.get("execution_state") == "idle":
                self.idle.set()
        elif msg.msg_type != "execute_input":
            self.outputs.append(msg)
        if self.on_iopub is not None:
            try:
                self.on_iopub(msg)
            except Exception:
                log.exception("on_iopub callback failed")


class IopubSubscription:
    """An async iterator over every iopub message from the moment it was created.

    Unbounded queue, so a slow consumer never blocks the client. Closing it
    (``aclose()``, leaving ``async with``, or dropping it) unsubscribes; it
    also ends by itself when the client stops.
    """

    def __init__(self, subscribers: set[asyncio.Queue[Message | None]], ended: bool) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        if ended:
            self._queue.put_nowait(None)
        else:
            subscribers.add(self._queue)

    def __aiter__(self) -> IopubSubscription:
        return self

    async def __anext__(self) -> Message:
        if self._queue not in self._subscribers and self._queue.empty():
            raise StopAsyncIteration
        msg = await self._queue.get()
        if msg is None:
            self.close()
            raise StopAsyncIteration
        return msg

    def close(self) -> None:
        self._subscribers.discard(self._queue)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> IopubSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
