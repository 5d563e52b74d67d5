"""The message schema and the windowed replay guard, as pure functions.

The live kernel's side of the same rules is in test_bad_messages.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from ipytui.kernel.protocol.replay import (
    ReplayError,
    StaleMessage,
    WindowReplayGuard,
    parse_date,
)
from ipytui.kernel.protocol.schema import (
    CONTENT,
    channel_problem,
    content_problem,
    header_problem,
    message_problem,
)
from ipytui.kernel.protocol.wire import BadMessage, Codec, WireError

KEY = b"k" * 32
NOW = 1_800_000_000.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def good_header(**changes: Any) -> dict[str, Any]:
    header = {"msg_id": "m1", "msg_type": "execute_request", "session": "s", "username": "u",
              "date": iso(NOW), "version": "5.3"}
    header.update(changes)
    return header


# -- headers ----------------------------------------------------------------------
def test_a_jupyter_client_header_passes() -> None:
    assert header_problem(good_header()) is None
    assert header_problem(Codec(KEY).header("kernel_info_request")) is None


@pytest.mark.parametrize(("changes", "why"), [
    ({"msg_id": ["a"]}, "'msg_id' must be a string, not an array"),
    ({"msg_id": {"a": 1}}, "'msg_id' must be a string, not an object"),
    ({"msg_id": None}, "'msg_id' must be a string, not null"),
    ({"session": 3}, "'session' must be a string, not an integer"),
    ({"username": True}, "'username' must be a string, not a boolean"),
    ({"date": 1.5}, "'date' must be a string, not a number"),
    ({"version": []}, "'version' must be a string"),
    ({"msg_type": ""}, "'msg_type' is empty"),
])
def test_header_fields_of_the_wrong_type_are_named(changes: dict[str, Any], why: str) -> None:
    problem = header_problem(good_header(**changes))
    assert problem is not None and why in problem


def test_header_strings_have_a_length_limit_and_error_texts_stay_short() -> None:
    problem = header_problem(good_header(msg_type="x" * 5000 + "_request"))
    assert problem == "header 'msg_type' is longer than 1024 characters"
    assert header_problem(good_header(msg_id="m" * 1024)) is None
    text = content_problem("history_request", {"hist_access_type": "y" * 1_000_000}) or ""
    assert "unknown hist_access_type" in text and len(text) < 200


def test_required_header_fields_must_be_there_and_optional_ones_may_not_be() -> None:
    for name in ("msg_id", "msg_type", "session"):
        header = good_header()
        del header[name]
        assert header_problem(header) == f"header has no {name!r}"
    header = good_header()
    for name in ("username", "version"):
        del header[name]
    assert header_problem(header) is None
    assert header_problem(["not", "a", "dict"]) == "header must be an object, not an array"


# -- content ----------------------------------------------------------------------
VALID = {
    "execute_request": {"code": "1", "silent": False, "store_history": True,
                        "user_expressions": {"a": "a"}, "allow_stdin": True, "stop_on_error": True},
    "complete_request": {"code": "pri", "cursor_pos": 3},
    "inspect_request": {"code": "len", "cursor_pos": 3, "detail_level": 1},
    "is_complete_request": {"code": "for x in y:"},
    "history_request": {"output": False, "raw": True, "hist_access_type": "range", "session": 0,
                        "start": 1, "stop": None, "n": 10, "pattern": "*", "unique": False},
    "kernel_info_request": {},
    "connect_request": {},
    "comm_info_request": {"target_name": "x"},
    "comm_open": {"comm_id": "c", "target_name": "t", "data": {}, "target_module": None},
    "comm_msg": {"comm_id": "c", "data": {"x": [1]}},
    "comm_close": {"comm_id": "c", "data": {}},
    "interrupt_request": {},
    "shutdown_request": {"restart": False},
    "usage_request": {},
    "debug_request": {"seq": 1, "type": "request", "command": "initialize", "arguments": {}},
    "input_reply": {"value": "typed"},
    "ipytui_restore_request": {},
}


def test_every_type_in_the_schema_has_a_valid_example_here() -> None:
    assert set(VALID) == set(CONTENT)


@pytest.mark.parametrize("msg_type", list(VALID))
def test_valid_content_passes(msg_type: str) -> None:
    assert content_problem(msg_type, VALID[msg_type]) is None


WRONG = [
    ("execute_request", {"code": 1}, "'code' must be a string, not an integer"),
    ("execute_request", {}, "has no 'code'"),
    ("execute_request", {"code": "", "silent": 1}, "'silent' must be a boolean, not an integer"),
    ("execute_request", {"code": "", "user_expressions": {"a": 1}}, "user_expressions['a']"),
    ("complete_request", {"code": "x", "cursor_pos": True}, "'cursor_pos' must be an integer or null"),
    ("complete_request", {"code": "x", "cursor_pos": "1"}, "'cursor_pos'"),
    ("history_request", {"n": 2**63}, "'n' is out of the 64-bit integer range"),
    ("inspect_request", {"code": "x", "cursor_pos": -(2**63) - 1}, "out of the 64-bit"),
    ("inspect_request", {"code": "x", "detail_level": 5}, "'detail_level' must be 0 or 1"),
    ("history_request", {"hist_access_type": "everything"}, "unknown hist_access_type"),
    ("history_request", {"n": "10"}, "'n' must be an integer or null, not a string"),
    ("comm_open", {"comm_id": ["c"], "target_name": "t"}, "'comm_id' must be a string, not an array"),
    ("comm_msg", {"comm_id": {"c": 1}, "data": {}}, "'comm_id' must be a string, not an object"),
    ("comm_msg", {"comm_id": "c", "data": ["x"]}, "'data' must be an object, not an array"),
    ("comm_close", {}, "has no 'comm_id'"),
    ("shutdown_request", {"restart": "yes"}, "'restart' must be a boolean"),
    ("input_reply", {"value": None}, "'value' must be a string, not null"),
    ("debug_request", {"arguments": []}, "'arguments' must be an object"),
]


@pytest.mark.parametrize(("msg_type", "content", "why"), WRONG,
                         ids=[f"{t}-{w}" for t, _, w in WRONG])
def test_wrong_content_is_named(msg_type: str, content: dict[str, Any], why: str) -> None:
    problem = content_problem(msg_type, content)
    assert problem is not None and why in problem, problem


def test_unknown_types_and_extra_fields_pass() -> None:
    assert content_problem("frobnicate_request", {"x": [1]}) is None
    assert content_problem("execute_request", {"code": "1", "future_field": [1]}) is None


def test_control_only_requests_are_refused_on_shell() -> None:
    assert channel_problem("shell", "ipytui_restore_request") is not None
    assert channel_problem("control", "ipytui_restore_request") is None
    assert "control channel" in (message_problem("shell", "debug_request", {}) or "")
    assert channel_problem("stdin", "execute_request") is not None
    assert channel_problem("stdin", "input_reply") is None


# -- the replay window -----------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_signature_is_refused_for_the_whole_window_however_many_came_between() -> None:
    clock = Clock()
    guard = WindowReplayGuard(window=60, clock=clock)
    guard.admit(b"first", good_header())
    for i in range(10_000):
        guard.admit(f"other-{i}".encode(), good_header())
    clock.now += 59
    with pytest.raises(ReplayError, match="replayed signature"):
        guard.admit(b"first", good_header())


def test_signatures_are_forgotten_once_their_date_left_the_window() -> None:
    clock = Clock()
    guard = WindowReplayGuard(window=60, clock=clock)
    for i in range(100):
        guard.admit(f"sig-{i}".encode(), good_header())
    assert len(guard) == 100
    clock.now += 61
    with pytest.raises(StaleMessage, match="outside the accepted window"):
        guard.admit(b"sig-0", good_header())  # the replay is refused as stale now
    guard.admit(b"new", good_header(date=iso(clock.now)))
    assert len(guard) == 1  # memory follows the window, not a count


@pytest.mark.parametrize("date", [None, "", "soon", "2026-13-45T00:00:00Z", 5, "x" * 10_000])
def test_undated_or_unparseable_dates_are_refused(date: Any) -> None:
    guard = WindowReplayGuard(window=60, clock=Clock())
    header = good_header(date=date)
    if date is None:
        del header["date"]
    with pytest.raises(StaleMessage, match="missing or not an ISO 8601 date"):
        guard.admit(b"s", header)
    assert len(guard) == 0


def test_dates_in_jupyter_formats_parse() -> None:
    assert parse_date("2027-01-15T08:00:00Z") == parse_date("2027-01-15T08:00:00+00:00")
    assert parse_date("2027-01-15T08:00:00.123456Z") is not None
    assert parse_date("2027-01-15T09:00:00+01:00") == parse_date("2027-01-15T08:00:00Z")
    assert parse_date("2027-01-15T08:00:00") == parse_date("2027-01-15T08:00:00Z")  # naive: UTC


def test_future_dates_within_the_window_pass_and_beyond_it_do_not() -> None:
    guard = WindowReplayGuard(window=60, clock=Clock())
    guard.admit(b"a", good_header(date=iso(NOW + 30)))
    with pytest.raises(StaleMessage):
        guard.admit(b"b", good_header(date=iso(NOW + 3600)))


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WindowReplayGuard(window=0)


# -- the strict codec ---------------------------------------------------------------------
def test_strict_codec_answers_what_it_can_and_drops_what_it_cannot() -> None:
    sender = Codec(KEY)
    receiver = Codec(KEY, strict=True, replay_window=600)
    msg = sender.msg("complete_request", {"code": "x"})
    msg.header["msg_id"] = ["x"]
    with pytest.raises(BadMessage, match="'msg_id' must be a string") as caught:
        receiver.deserialize(sender.serialize(msg, [b"peer"]))
    assert caught.value.msg.identities == [b"peer"]
    assert caught.value.msg.msg_type == "complete_request"
    notice = sender.msg("comm_msg", {})
    notice.header["session"] = 5
    with pytest.raises(WireError) as dropped:  # not a request: nobody to answer
        receiver.deserialize(sender.serialize(notice, []))
    assert not isinstance(dropped.value, BadMessage)


def test_strict_codec_refuses_an_oversized_message_after_checking_its_signature() -> None:
    sender = Codec(KEY)
    receiver = Codec(KEY, strict=True, replay_window=600, max_message_bytes=1000)
    frames = sender.serialize(sender.msg("execute_request", {"code": "#" * 2000}), [])
    with pytest.raises(BadMessage, match="over this kernel's limit of 1000 bytes"):
        receiver.deserialize(frames)
    frames[1] = b"0" * 64
    with pytest.raises(WireError, match="invalid signature"):
        Codec(KEY, strict=True, replay_window=600, max_message_bytes=1000).deserialize(frames)


def test_a_window_codec_drops_a_replay_and_answers_a_stale_one() -> None:
    sender = Codec(KEY)
    receiver = Codec(KEY, strict=True, replay_window=600)
    frames = sender.serialize(sender.msg("kernel_info_request"), [])
    receiver.deserialize(frames)
    with pytest.raises(WireError, match="replayed signature") as replay:
        receiver.deserialize(frames)
    assert not isinstance(replay.value, BadMessage)
    old = sender.msg("kernel_info_request")
    old.header["date"] = iso(NOW - 86_400 * 365)
    with pytest.raises(BadMessage, match="outside the accepted window"):
        receiver.deserialize(sender.serialize(old, []))
