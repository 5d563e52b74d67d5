"""The worker's single way out: signed messages onto the "up" pipe, under a lock.

It also holds the one "current parent" that every output sink reads, so
output from any thread during a cell is attributed to that cell.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import zmq

from .wire import Codec, Message


class Publisher:
    """Sends wire messages tagged with their channel; safe from any thread."""

    def __init__(self, socket: zmq.Socket, codec: Codec) -> None:
        self.socket = socket
        self.codec = codec
        self.lock = threading.Lock()
        self.parent: Message | None = None

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        identities: list[bytes] | None = None,
    ) -> Message:
        """Build, sign and send one message; parent defaults to the current one."""
        parent = parent if parent is not None else self.parent
        msg = self.codec.msg(msg_type, content, parent=parent, metadata=metadata)
        if identities is None:
            identities = [msg_type.encode()] if channel == "iopub" else []
        frames = self.codec.serialize(msg, identities)
        with self.lock:
            self.socket.send_multipart([channel.encode(), *frames], copy=False)
        return msg

    def reply(self, channel: str, request: Message, msg_type: str, content: dict[str, Any],
              metadata: dict[str, Any] | None = None) -> Message:
        """Answer a request, routed back to the sender's identities."""
        return self.send(channel, msg_type, content, parent=request, metadata=metadata,
                         identities=request.identities)

    def status(self, state: str, parent: Message | None) -> None:
        self.send("iopub", "status", {"execution_state": state}, parent=parent)

    def sup(self, event: dict[str, Any]) -> None:
        """A bookkeeping event for the supervisor (never reaches a client)."""
        with self.lock:
            self.socket.send_multipart([b"sup", json.dumps(event).encode()])
