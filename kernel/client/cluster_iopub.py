"""EngineFeed: one ipyparallel engine's IOPub, straight from the cluster's Hub.

The Hub republishes every engine's IOPub with the topic ``engine.<id>.<type>``
(ipyparallel's IOPub watcher example reads it the same way); a SUB socket
subscribed to ``engine.<id>.`` gets one engine's messages and nothing else,
filtered by the Hub. Messages are signed with the cluster's key, checked
here with the kernel's own codec. The socket uses CurveZMQ when the cluster
does (its connection info has a ``curve_serverkey``), with a key pair made
for this client: ipyparallel's controller encrypts without an allow-list.
"""

from __future__ import annotations

from typing import Any

import zmq
import zmq.asyncio
from ipytui.kernel.protocol.wire import Codec, Message, WireError

RECV_HWM = 10_000  # messages queued for a slow UI; past it the Hub drops (PUB semantics)


class EngineFeed:
    """Subscribe to one engine at a time; ``recv`` yields (engine id, message)."""

    def __init__(self, iopub: dict[str, Any]) -> None:
        url, key = iopub.get("url"), iopub.get("key")
        if not isinstance(url, str) or not url or not isinstance(key, str):
            raise ValueError("the cluster event has no IOPub url and key")
        self.codec = Codec(
            key, str(iopub.get("signature_scheme") or "hmac-sha256"), check_replay=False
        )
        self.encrypted = bool(iopub.get("curve_serverkey"))
        self.context = zmq.asyncio.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.linger = 0
        self.socket.rcvhwm = RECV_HWM
        if self.encrypted:
            self.socket.curve_serverkey = str(iopub["curve_serverkey"]).encode("ascii")
            self.socket.curve_publickey, self.socket.curve_secretkey = zmq.curve_keypair()
        self.socket.connect(url)
        self.url = url
        self.engine: int | None = None

    def follow(self, engine: int) -> None:
        """Hear ``engine`` from now on (and no other)."""
        if self.engine is not None:
            self.socket.unsubscribe(_topic(self.engine))
        self.engine = engine
        self.socket.subscribe(_topic(engine))

    async def recv(self) -> tuple[int, Message] | None:
        """The next message of the followed engine; None for a frame set that is not one
        (bad signature, another engine's message still queued at a switch)."""
        frames = await self.socket.recv_multipart()
        try:
            msg = self.codec.deserialize(frames)
        except WireError:
            return None
        engine = engine_of(msg.identities[0] if msg.identities else b"")
        if engine is None or engine != self.engine:
            return None
        return engine, msg

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def _topic(engine: int) -> bytes:
    return f"engine.{engine}.".encode()


def engine_of(topic: bytes) -> int | None:
    """``b"engine.3.stream"`` -> 3."""
    parts = topic.split(b".")
    if len(parts) < 3 or parts[0] != b"engine":
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None
