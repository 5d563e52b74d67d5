"""The worker's single way out: signed messages onto the "up" pipe, under a lock.

It also holds the one "current parent" that every output sink reads, so
output from any thread during a cell is attributed to that cell.

Every reply, status and stream chunk passes through ``send``, so it builds
the frames itself rather than through ``Codec.msg``/``Codec.serialize``:
the same bytes (``wire.dumps`` settings, ``Codec.sign``), but one JSON
encoder made once, the parent header encoded once per parent, and no
intermediate objects beyond the returned Message.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.wire import DELIM, Codec, Message, _json_default

if TYPE_CHECKING:
    from ipytui.kernel.worker.pipe import WorkerPipe

# Exactly wire.dumps's settings; building an encoder per call costs more than encoding a header.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
_encode = _ENCODER.encode


def _dumps(obj: Any) -> bytes:
    return _encode(obj).encode("utf-8", "surrogateescape")


class Publisher:
    """Sends wire messages tagged with their channel; safe from any thread."""

    def __init__(self, socket: WorkerPipe, codec: Codec) -> None:
        self.socket = socket
        self.codec = codec
        self.lock = threading.Lock()
        self.parent: Message | None = None
        self._parent_ref: dict[str, Any] | None = None  # a received header: never mutated
        self._parent_bytes = b"{}"
        self._channels: dict[str, bytes] = {}
        self._held: list[list[bytes]] | None = None  # messages of a together() block
        self._holder = 0  # the thread in that block
        self.owner_pid = os.getpid()  # only this process writes to the pipe
        # (content, metadata) -> metadata of every reply: an engine marks them as its own
        self.reply_hook: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Messages sent in this block leave in one write: one wake-up of the supervisor.

        A reply and its idle are what a client waits for; written apart, the
        supervisor may wake for each. Other threads' sends wait for the block.
        """
        with self.lock:
            self._held, self._holder = [], threading.get_ident()
            try:
                yield
            finally:
                held, self._held, self._holder = self._held, None, 0
                if held:
                    self.socket.send_many(held)

    def _encode_parent(self, header: dict[str, Any]) -> bytes:
        """The parent header's JSON, remembered for the messages of the same parent."""
        if header is not self._parent_ref:
            self._parent_bytes = _dumps(header)
            self._parent_ref = header
        return self._parent_bytes

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        identities: list[bytes] | None = None,
        buffers: list[bytes] | None = None,
    ) -> Message:
        """Build, sign and send one message; parent defaults to the current one.

        ``buffers`` (comm messages' binary parts) follow the signed frames unsigned,
        as the protocol says.
        """
        parent = parent if parent is not None else self.parent
        codec = self.codec
        header = codec.header(msg_type)
        parent_header = parent.header if isinstance(parent, Message) else parent or {}
        parts = [_dumps(header), self._encode_parent(parent_header) if parent_header else b"{}",
                 _dumps(metadata) if metadata else b"{}", _dumps(content)]
        if identities is None:
            identities = [msg_type.encode()] if channel == "iopub" else []
        tag = self._channels.get(channel)
        if tag is None:
            tag = self._channels[channel] = channel.encode()
        frames = [tag, *identities, DELIM, codec.sign(parts), *parts]
        if buffers:
            frames.extend(buffers)
        if os.getpid() != self.owner_pid:
            pass  # a fork() of user code (multiprocessing): it must not garble the worker's pipe
        elif self._held is not None and self._holder == threading.get_ident():
            self._held.append(frames)
        else:
            with self.lock:
                self.socket.send_multipart(frames)
        return Message(header=header, parent_header=parent_header, metadata=metadata or {},
                       content=content, buffers=list(buffers or []))

    def reply(self, channel: str, request: Message, msg_type: str, content: dict[str, Any],
              metadata: dict[str, Any] | None = None) -> Message:
        """Answer a request, routed back to the sender's identities."""
        if self.reply_hook is not None:
            metadata = self.reply_hook(content, metadata or {})
        return self.send(channel, msg_type, content, parent=request, metadata=metadata,
                         identities=request.identities)

    def status(self, state: str, parent: Message | None) -> None:
        self.send("iopub", "status", {"execution_state": state}, parent=parent)

    def sup(self, event: dict[str, Any]) -> None:
        """A bookkeeping event for the supervisor (never reaches a client); in a
        ``together()`` block it leaves with the block's messages, in order."""
        if os.getpid() != self.owner_pid:
            return
        frames = [b"sup", json.dumps(event).encode()]
        if self._held is not None and self._holder == threading.get_ident():
            self._held.append(frames)
            return
        with self.lock:
            self.socket.send_multipart(frames)
