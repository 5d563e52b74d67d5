"""A live ipytui kernel gets every kind of bad message and keeps serving.

Messages that cannot be trusted (unsigned, wrongly signed, replayed,
truncated, without a type) are execute_requests that would bump a counter:
after each, a kernel_info and an execute still get answered, the counter
shows the bad cell never ran, no reply ever named the bad message, and the
kernel's log holds one line saying why it was dropped. Correctly signed
requests that are unusable (fields of the wrong type, non-JSON or oversized
frames, a stale date, a control-only request on shell, an unknown type) get
an error reply saying what is wrong, and the kernel keeps its worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
from raw_client import RawClient, assert_still_serving, kernel_log, worker_pid

pytestmark = pytest.mark.timeout(90)


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


def deeply_nested_content(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    depth = 200_000
    return _signed(client, [dumps(msg.header), b"{}", b"{}",
                            b'{"code": ' + b"[" * depth + b"]" * depth + b"}"])


def header_without_msg_type(client: RawClient) -> list[bytes]:
    msg, _ = _bump(client)
    header = {k: v for k, v in msg.header.items() if k != "msg_type"}
    return _signed(client, [dumps(header), b"{}", b"{}", dumps({"code": "hits += 1"})])


def header_with(client: RawClient, **changes: Any) -> list[bytes]:
    """A signed bump whose header has these fields changed (None: removed)."""
    msg, _ = _bump(client)
    header = {k: v for k, v in {**msg.header, **changes}.items() if v is not None}
    return client.signed(header, msg.content)


DROPPED: dict[str, tuple[Callable[[RawClient], list[bytes]], str]] = {
    "unsigned": (unsigned, "unsigned message"),
    "wrongly signed": (wrongly_signed, "invalid signature"),
    "signature of another message": (signature_of_other_content, "invalid signature"),
    "truncated": (truncated, "truncated message"),
    "no delimiter": (no_delimiter, "no <IDS|MSG> delimiter"),
    "header without msg_type": (header_without_msg_type, "header is not an object with a msg_type"),
    "msg_type a list": (lambda c: header_with(c, msg_type=["execute_request"]),
                        "header is not an object with a msg_type"),
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
    log = kernel_log(tmp_path)
    assert log.count(f"dropped a message on shell: {why}") == 1, log[-3000:]


# -- signed but unusable: an error reply that says why ----------------------
def oversized(client: RawClient) -> list[bytes]:
    """Over the limit in total, every frame under it."""
    half = DEFAULT_MAX_MESSAGE_BYTES // 2 + 1
    msg = client.codec.msg("execute_request", {"code": "hits += 1  # " + "#" * half},
                           buffers=[b"\0" * half])
    return client.codec.serialize(msg, [])


def oversized_frame(client: RawClient) -> list[bytes]:
    """One frame just over the limit (zmq's own limit is a little higher, so we can answer)."""
    padding = "#" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    _, frames = client.build("execute_request", {"code": f"hits += 1 {padding}"})
    return frames


REFUSED: dict[str, tuple[Callable[[RawClient], list[bytes]], str]] = {
    "non-JSON content": (non_json_content, "malformed JSON in the content"),
    "non-UTF-8 content": (non_utf8_content, "malformed JSON in the content"),
    "non-object content": (non_object_content, "content is not a JSON object"),
    "deeply nested content": (deeply_nested_content, "JSON nested too deeply in the content"),
    "non-object parent header": (
        lambda c: c.signed(_bump(c)[0].header, {"code": "hits += 1"}, parent=[1]),
        "parent_header is not a JSON object"),
    "non-object metadata": (
        lambda c: c.signed(_bump(c)[0].header, {"code": "hits += 1"}, metadata="x"),
        "metadata is not a JSON object"),
    "msg_id a list": (lambda c: header_with(c, msg_id=["a", "b"]),
                      "header 'msg_id' must be a string, not an array"),
    "msg_id an object": (lambda c: header_with(c, msg_id={"a": 1}),
                         "header 'msg_id' must be a string, not an object"),
    "no msg_id": (lambda c: header_with(c, msg_id=None), "header has no 'msg_id'"),
    "msg_id of 5000 characters": (lambda c: header_with(c, msg_id="m" * 5000),
                                  "header 'msg_id' is longer than 1024 characters"),
    "session a number": (lambda c: header_with(c, session=7),
                         "header 'session' must be a string, not an integer"),
    "username a list": (lambda c: header_with(c, username=["me"]),
                        "header 'username' must be a string, not an array"),
    "version a number": (lambda c: header_with(c, version=5.3),
                         "header 'version' must be a string, not a number"),
    "date a number": (lambda c: header_with(c, date=0), "header 'date' must be a string"),
    "no date": (lambda c: header_with(c, date=None), "header 'date' is missing"),
    "date not a date": (lambda c: header_with(c, date="yesterday"), "not an ISO 8601 date"),
    "date a day old": (lambda c: header_with(c, date="2000-01-01T00:00:00Z"),
                       "outside the accepted window"),
    "code a list": (lambda c: c.signed(_bump(c)[0].header, {"code": ["hits += 1"]}),
                    "execute_request content 'code' must be a string, not an array"),
    "silent a string": (lambda c: c.signed(_bump(c)[0].header, {"code": "hits += 1", "silent": "no"}),
                        "execute_request content 'silent' must be a boolean, not a string"),
    "user_expressions a list": (
        lambda c: c.signed(_bump(c)[0].header, {"code": "hits += 1", "user_expressions": [1]}),
        "'user_expressions' must be an object"),
    "oversized": (oversized, "over this kernel's limit of 67108864 bytes"),
    "oversized frame": (oversized_frame, "over this kernel's limit of 67108864 bytes"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_unusable_signed_request_gets_an_error_reply(
        case: str, client: RawClient, tmp_path: Path) -> None:
    build, why = REFUSED[case]
    pid = worker_pid(client)
    frames = build(client)
    header = json.loads(frames[frames.index(DELIM) + 2])
    client.send_frames("shell", frames)
    reply = client.reply_to_header("shell", header)
    assert reply.msg_type == "execute_reply"
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "BadRequest"
    assert why in reply.content["evalue"], reply.content["evalue"]
    assert client.hits() == 0
    assert_still_serving(client)
    assert worker_pid(client) == pid
    log = kernel_log(tmp_path)
    assert log.count("refused a execute_request on shell: ") == 1, log[-3000:]
    assert why in log


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


def test_a_bad_input_reply_is_dropped_and_the_prompt_still_waits_for_a_good_one(
        client: RawClient, tmp_path: Path) -> None:
    cell = client.request("shell", "execute_request", {
        "code": "got = input('? ')", "allow_stdin": True, "silent": False})
    asked = client.wait_reply("stdin", lambda m: m.msg_type == "input_request", "input_request")
    for bad in (["typed"], {"v": 1}, None, 5):
        reply = client.codec.msg("input_reply", {"value": bad}, parent=asked)
        client.send_frames("stdin", client.codec.serialize(reply, []))
    client.send_frames("stdin", client.codec.serialize(
        client.codec.msg("input_reply", {"value": "typed"}, parent=asked), []))
    assert client.reply_to("shell", cell).content["status"] == "ok"
    probe = client.call("shell", "execute_request", {
        "code": "", "user_expressions": {"got": "got"}})
    assert probe.content["user_expressions"]["got"]["data"]["text/plain"] == "'typed'"
    log = kernel_log(tmp_path)
    assert log.count("dropped a input_reply on stdin: input_reply content 'value' must be a string") == 4
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


@pytest.mark.parametrize("content", [{}, {"code": 5}, {"buffers": "x"}])
def test_apply_request_to_a_kernel_that_is_no_engine_is_refused(
        client: RawClient, content: dict[str, Any]) -> None:
    """Only an ipytui engine serves ipyparallel's tasks; a plain kernel runs nothing for one."""
    reply = client.call("shell", "apply_request", content)
    assert reply.msg_type == "apply_reply"
    assert reply.content["status"] == "error", reply.content
    assert "apply_request" in reply.content["evalue"]
    assert_still_serving(client)


@pytest.mark.parametrize("content", [
    {"comm_id": 5, "data": "x"},
    {"comm_id": ["a"], "target_name": {"t": 1}},
    {"comm_id": "no-such-comm", "data": {"method": "update"}},
])
@pytest.mark.parametrize("msg_type", ["comm_open", "comm_msg", "comm_close"])
def test_comm_messages_with_wrong_types_leave_the_kernel_serving(
        client: RawClient, msg_type: str, content: dict[str, Any]) -> None:
    """Comm messages run on the worker's main thread in order with cells: a bad one
    must not end the worker, nor stop the cells behind it."""
    pid = worker_pid(client)
    client.request("shell", msg_type, content)
    assert_still_serving(client)
    assert client.hits() == 0
    assert worker_pid(client) == pid  # the same worker: nothing crashed


WRONG_CONTENT = [
    ("execute_request", {"code": 123}),
    ("execute_request", {"code": ["print(1)"]}),
    ("complete_request", {"code": "pri", "cursor_pos": "x"}),
    ("complete_request", {"code": 5, "cursor_pos": 1}),
    ("inspect_request", {"code": None, "cursor_pos": 0, "detail_level": 0}),
    ("inspect_request", {"code": "len", "cursor_pos": [3]}),
    ("is_complete_request", {"code": {"a": 1}}),
    ("history_request", {"hist_access_type": "range", "session": "x", "start": "y"}),
    ("history_request", {"hist_access_type": "tail", "n": 10**30}),
    ("comm_info_request", {"target_name": ["a"]}),
    ("shutdown_request", {"restart": "yes"}),
]


@pytest.mark.parametrize(("msg_type", "content"), WRONG_CONTENT,
                         ids=[f"{t}-{json.dumps(c)}" for t, c in WRONG_CONTENT])
def test_wrong_content_types_get_an_error_reply(
        client: RawClient, msg_type: str, content: dict[str, Any]) -> None:
    reply = client.call("shell", msg_type, content)
    assert reply.msg_type == msg_type.replace("_request", "_reply")
    assert reply.content["status"] == "error", reply.content
    assert reply.content["ename"] == "BadRequest", reply.content
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
