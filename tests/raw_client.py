"""A raw ZeroMQ client for tests that send exactly the frames they build.

No jupyter_client in between: a test can sign whatever it likes (wrong types,
replays, oversized frames) and see every reply the kernel sends back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.wire import DELIM, Codec, Message, dumps

TIMEOUT = 20.0
_EMPTY: Any = object()  # an absent frame argument (None is a value a test may send)


class RawClient:
    """A bare DEALER per channel plus a codec: sends exactly the frames a test builds."""

    def __init__(self, info: ConnectionInfo) -> None:
        self.info = info
        self.codec = Codec(info.key, info.signature_scheme)
        # Replies are parsed without the replay guard: only the kernel must refuse replays.
        self.reader = Codec(info.key, info.signature_scheme, check_replay=False)
        self.context = zmq.Context()
        self.sockets: dict[str, zmq.Socket] = {}
        identity = uuid.uuid4().hex.encode()  # shared by shell and stdin, as the spec asks
        for channel in ("shell", "control", "stdin"):
            sock = self.context.socket(zmq.DEALER)
            sock.linger = 0
            if channel != "control":
                sock.identity = identity
            sock.connect(info.url(channel))
            self.sockets[channel] = sock
        self.seen: list[Message] = []  # every reply received, in order

    def close(self) -> None:
        self.context.destroy(linger=0)

    def build(self, msg_type: str, content: dict[str, Any] | None = None) -> tuple[Message, list[bytes]]:
        msg = self.codec.msg(msg_type, content or {})
        return msg, self.codec.serialize(msg, [])

    def signed(self, header: Any, content: Any, parent: Any = _EMPTY, metadata: Any = _EMPTY) -> list[bytes]:
        """Correctly signed frames around any JSON values (the kernel must check them)."""
        parts = [dumps(header), dumps({} if parent is _EMPTY else parent),
                 dumps({} if metadata is _EMPTY else metadata), dumps(content)]
        return [DELIM, self.codec.sign(parts), *parts]

    def send_frames(self, channel: str, frames: list[bytes]) -> None:
        self.sockets[channel].send_multipart(frames)

    def request(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> str:
        msg, frames = self.build(msg_type, content)
        self.send_frames(channel, frames)
        return msg.msg_id

    def reply_to(self, channel: str, msg_id: str, timeout: float = TIMEOUT) -> Message:
        """Receive on channel until the reply to msg_id arrives."""
        return self.wait_reply(channel, lambda m: m.parent_id == msg_id, f"reply to {msg_id}", timeout)

    def reply_to_header(self, channel: str, header: dict[str, Any], timeout: float = TIMEOUT) -> Message:
        """The reply whose parent header is this one (whatever its msg_id's type)."""
        return self.wait_reply(channel, lambda m: m.parent_header == header, "reply", timeout)

    def wait_reply(self, channel: str, match: Callable[[Message], bool], what: str,
                   timeout: float = TIMEOUT) -> Message:
        """Receive on channel until a reply matches (every one is kept in ``seen``)."""
        sock = self.sockets[channel]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(remaining * 1000):
                raise TimeoutError(f"no {what} on {channel}")
            msg = self.reader.deserialize(sock.recv_multipart())
            self.seen.append(msg)
            if match(msg):
                return msg

    def call(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> Message:
        return self.reply_to(channel, self.request(channel, msg_type, content))

    def hits(self) -> int:
        """The counter the bad cells would bump, read through user_expressions."""
        reply = self.call("shell", "execute_request", {
            "code": "", "silent": True, "user_expressions": {"hits": "hits"}})
        assert reply.content["status"] == "ok", reply.content
        return int(reply.content["user_expressions"]["hits"]["data"]["text/plain"])




def kernel_log(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("kernel-*.log")))


def assert_still_serving(client: RawClient) -> None:
    info = client.call("shell", "kernel_info_request")
    assert info.content["status"] == "ok"
    assert info.content["implementation"] == "ipytui"
    control_info = client.call("control", "kernel_info_request")
    assert control_info.content["status"] == "ok"
    reply = client.call("shell", "execute_request", {"code": "6 * 7"})
    assert reply.content["status"] == "ok"


def worker_pid(client: RawClient, channel: str = "control") -> int:
    """The worker's pid, from kernel_info's ipytui facts."""
    reply = client.call(channel, "kernel_info_request")
    assert reply.content["status"] == "ok", reply.content
    return int(reply.content["ipytui"]["worker_pid"])
