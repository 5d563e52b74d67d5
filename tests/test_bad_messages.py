"""A live ipytui kernel gets every kind of bad message and keeps serving.

Messages that must be dropped (unsigned, wrongly signed, replayed,
truncated, non-JSON, non-object, oversized) are execute_requests that would
bump a counter: after each, a kernel_info and an execute still get answered,
the counter shows the bad cell never ran, no reply ever named the bad
message, and the kernel's log holds one line saying why it was dropped.
Requests that are well formed but wrong (an unknown type, content of the
wrong types) must get an error reply instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from conftest import IPYTUI_ARGV
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DELIM,
    Codec,
    Message,
    WireError,
    dumps,
)

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 20.0


class RawClient:
    """A bare DEALER per channel plus a codec: sends exactly the frames a test builds."""

    def __init__(self, info: ConnectionInfo) -> None:
        self.info = info
        self.codec = Codec(info.key, info.signature_scheme)
        # Replies are parsed without the replay guard: only the kernel must refuse replays.
        self.reader = Codec(info.key, info.signature_scheme, check_replay=False)
        self.context = zmq.Context()
        self.sockets: dict[str, zmq.Socket] = {}
        for channel in ("shell", "control"):
            sock = self.context.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(info.url(channel))
            self.sockets[channel] = sock
        self.seen: list[Message] = []  # every reply received, in order

    def close(self) -> None:
        self.context.destroy(linger=0)

    def build(self, msg_type: str, content: dict[str, Any] | None = None) -> tuple[Message, list[bytes]]:
        msg = self.codec.msg(msg_type, content or {})
        return msg, self.codec.serialize(msg, [])

    def send_frames(self, channel: str, frames: list[bytes]) -> None:
        self.sockets[channel].send_multipart(frames)

    def request(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> str:
        msg, frames = self.build(msg_type, content)
        self.send_frames(channel, frames)
        return msg.msg_id

    def reply_to(self, channel: str, msg_id: str, timeout: float = TIMEOUT) -> Message:
        """Receive on channel until the reply to msg_id arrives."""
        sock = self.sockets[channel]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(remaining * 1000):
                raise TimeoutError(f"no reply to {msg_id} on {channel}")
            msg = self.reader.deserialize(sock.recv_multipart())
            self.seen.append(msg)
            if msg.parent_id == msg_id:
                return msg

    def call(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> Message:
        return self.reply_to(channel, self.request(channel, msg_type, content))

    def hits(self) -> int:
        """The counter the bad cells would bump, read through user_expressions."""
        reply = self.call("shell", "execute_request", {
            "code": "", "silent": True, "user_expressions": {"hits": "hits"}})
        assert reply.content["status"] == "ok", reply.content
        return int(reply.content["user_expressions"]["hits"]["data"]["text/plain"])


@pytest.fixture
def kernel(start_kernel) -> tuple[ConnectionInfo, Any]:
    return start_kernel(IPYTUI_ARGV)


@pytest.fixture
def client(kernel) -> Iterator[RawClient]:
    raw = RawClient(kernel[0])
    reply = raw.call("shell", "execute_request", {"code": "hits = 0", "silent": False})
    assert reply.content["status"] == "ok"
    yield raw
    raw.close()


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


# -- messages that must be dropped ------------------------------------------
def _bump(client: RawClient) -> tuple[Message, list[bytes]]:
    return client.build("execute_request", {"code": "hits += 1", "silent": False})


def unsigned(client: RawClient) -> list[bytes]:
    _, frames = _bump(client)
    frames[1] = b""
    return frames


def wrongly_signed(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    return Codec("0" * 64).serialize(msg, [])


def signature_of_other_content(client: RawClient) -> list[bytes]:
    _, frames = _bump(client)
    _, other = client.build("execute_request", {"code": "pass"})
    frames[1] = other[1]
    return frames


def truncated(client: RawClient) -> list[bytes]:
    _, frames = _bump(client)
    return frames[:4]  # delimiter, signature, header, parent: no metadata, no content


def no_delimiter(client: RawClient) -> list[bytes]:
    _, frames = _bump(client)
    return frames[1:]


def _signed(client: RawClient, parts: list[bytes]) -> list[bytes]:
    return [DELIM, client.codec.sign(parts), *parts]


def non_json_content(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    return _signed(client, [dumps(msg.header), b"{}", b"{}", b'{"code": "hits += 1",'])


def non_utf8_content(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    return _signed(client, [dumps(msg.header), b"{}", b"{}", b"\xff\xfe\x00garbage"])


def non_object_content(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    return _signed(client, [dumps(msg.header), b"{}", b"{}", b'["hits += 1"]'])


def header_without_msg_type(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    header = {k: v for k, v in msg.header.items() if k != "msg_type"}
    return _signed(client, [dumps(header), b"{}", b"{}", dumps({"code": "hits += 1"})])


def oversized(client: RawClient) -> list[bytes]:
    """Over the codec's limit in total, every frame under the socket's per-frame limit."""
    half = DEFAULT_MAX_MESSAGE_BYTES // 2 + 1
    msg = client.codec.msg("execute_request", {"code": "hits += 1  # " + "#" * half},
                           buffers=[b"\0" * half])
    return client.codec.serialize(msg, [])


def oversized_frame(client: RawClient) -> list[bytes]:
    """One frame over the limit: zmq itself refuses it (maxmsgsize) and drops the connection."""
    padding = "#" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    _, frames = client.build("execute_request", {"code": f"hits += 1 {padding}"})
    return frames


DROPPED: dict[str, tuple[Callable[[RawClient], list[bytes]], str | None]] = {
    "unsigned": (unsigned, "unsigned message"),
    "wrongly signed": (wrongly_signed, "invalid signature"),
    "signature of another message": (signature_of_other_content, "invalid signature"),
    "truncated": (truncated, "truncated message"),
    "no delimiter": (no_delimiter, "no <IDS|MSG> delimiter"),
    "non-JSON content": (non_json_content, "malformed JSON"),
    "non-UTF-8 content": (non_utf8_content, "malformed JSON"),
    "non-object content": (non_object_content, "content is not a JSON object"),
    "header without msg_type": (header_without_msg_type, "header is not an object with a msg_type"),
    "oversized": (oversized, "oversized message"),
    "oversized frame": (oversized_frame, None),  # refused by zmq before the codec: no log line
}


@pytest.mark.parametrize("case", list(DROPPED))
def test_bad_message_is_dropped_and_kernel_keeps_serving(
        case: str, client: RawClient, tmp_path: Path) -> None:
    build, why = DROPPED[case]
    frames = build(client)
    client.send_frames("shell", frames)
    # Shell messages are handled in order, so by the time this answer comes the
    # bad message was dealt with: it must have been dropped, not run.
    assert client.hits() == 0
    assert_still_serving(client)
    assert client.hits() == 0
    assert all(m.msg_type != "execute_reply" or m.content.get("status") == "ok"
               for m in client.seen), [m.content for m in client.seen]
    if why is not None:
        log = kernel_log(tmp_path)
        assert log.count(f"dropped a message on shell: {why}") == 1, log[-3000:]


def test_replayed_message_is_dropped(client: RawClient, tmp_path: Path) -> None:
    msg, frames = _bump(client)
    client.send_frames("shell", frames)
    assert client.reply_to("shell", msg.msg_id).content["status"] == "ok"
    assert client.hits() == 1
    client.send_frames("shell", frames)  # the very same frames again
    assert client.hits() == 1
    replies = [m for m in client.seen if m.parent_id == msg.msg_id and m.msg_type == "execute_reply"]
    assert len(replies) == 1
    assert_still_serving(client)
    assert kernel_log(tmp_path).count("dropped a message on shell: replayed signature") == 1


def test_bad_messages_on_control_and_stdin_are_dropped(client: RawClient, tmp_path: Path) -> None:
    client.send_frames("control", unsigned(client))
    client.send_frames("control", truncated(client))
    assert client.call("control", "kernel_info_request").content["status"] == "ok"
    assert client.hits() == 0
    log = kernel_log(tmp_path)
    assert "dropped a message on control: unsigned message" in log
    assert "dropped a message on control: truncated message" in log
    assert_still_serving(client)


def test_a_message_signed_with_another_key_cannot_shut_the_kernel_down(
        client: RawClient, kernel) -> None:
    msg = client.codec.msg("shutdown_request", {"restart": False})
    client.send_frames("control", Codec("f" * 64).serialize(msg, []))
    assert_still_serving(client)
    assert kernel[1].poll() is None


# -- well-formed but wrong requests: error replies ----------------------------
@pytest.mark.parametrize("channel", ["shell", "control"])
def test_unknown_request_gets_an_error_reply_naming_it(client: RawClient, channel: str) -> None:
    reply = client.call(channel, "frobnicate_request", {"x": 1})
    assert reply.msg_type == "frobnicate_reply"
    assert reply.content["status"] == "error"
    assert "frobnicate_request" in reply.content["evalue"]
    assert_still_serving(client)


def test_unknown_non_request_is_ignored(client: RawClient) -> None:
    notice = client.request("shell", "frobnicate_notice", {})
    assert_still_serving(client)
    assert not [m for m in client.seen if m.parent_id == notice]


WRONG_CONTENT = [
    ("execute_request", {"code": 123}),
    ("execute_request", {"code": ["print(1)"]}),
    ("complete_request", {"code": "pri", "cursor_pos": "x"}),
    ("complete_request", {"code": 5, "cursor_pos": 1}),
    ("inspect_request", {"code": None, "cursor_pos": 0, "detail_level": 0}),
    ("inspect_request", {"code": "len", "cursor_pos": [3]}),
    ("is_complete_request", {"code": {"a": 1}}),
    ("history_request", {"hist_access_type": "range", "session": "x", "start": "y"}),
]


@pytest.mark.parametrize(("msg_type", "content"), WRONG_CONTENT,
                         ids=[f"{t}-{json.dumps(c)}" for t, c in WRONG_CONTENT])
def test_wrong_content_types_get_an_error_reply(
        client: RawClient, msg_type: str, content: dict[str, Any]) -> None:
    reply = client.call("shell", msg_type, content)
    assert reply.msg_type == msg_type.replace("_request", "_reply")
    assert reply.content["status"] == "error", reply.content
    assert isinstance(reply.content.get("evalue"), str) and reply.content["evalue"]
    assert_still_serving(client)
    assert client.hits() == 0


@pytest.mark.parametrize("content", [
    {"hist_access_type": "tail", "n": {"a": 1}},
    {"hist_access_type": "search", "pattern": 5, "n": "x"},
    {"hist_access_type": ["tail"]},
])
def test_history_with_wrong_types_is_answered(client: RawClient, content: dict[str, Any]) -> None:
    """The journal answers what it can (an empty history or an error), never silence."""
    reply = client.call("shell", "history_request", content)
    assert reply.msg_type == "history_reply"
    assert reply.content["status"] in ("ok", "error")
    if reply.content["status"] == "ok":
        assert isinstance(reply.content["history"], list)
    assert_still_serving(client)


def test_helper_codec_checks_signatures(client: RawClient) -> None:
    """Guard for this file's helper: a reply the kernel signs parses, a forged one does not."""
    reply = client.call("shell", "kernel_info_request")
    frames = client.reader.serialize(reply, [])
    frames[1] = b"0" * 64
    with pytest.raises(WireError):
        client.reader.deserialize(frames)
