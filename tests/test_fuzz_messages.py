"""Property: no correctly signed message, however wrong its fields, hurts the kernel.

Hypothesis builds messages of every type the kernel accepts, each with one
field (of the header, the content, or a whole frame) given a value of a JSON
type the messaging spec does not allow there: lists, objects, numbers, null,
booleans, huge strings, nesting. They are signed with the kernel's key and
sent on shell and control to one real kernel. Every request among them must
get exactly one error reply (never silence, never an 'ok'); after each batch
the same worker process must still run a cell.

The field tables below are written from the spec, not imported from the
kernel's schema, so a gap in the schema shows up here. Bounded and
deterministic: a fixed number of examples, derandomized, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import IPYTUI_ARGV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ipytui.kernel.protocol.wire import Message
from raw_client import RawClient, worker_pid

pytestmark = pytest.mark.timeout(300)

# What the spec allows, per field: JSON kinds (see kind()).
S, INT, B, D, N = "str", "int", "bool", "dict", "null"
HEADER = {"msg_id": {S}, "msg_type": {S}, "session": {S}, "username": {S}, "date": {S},
          "version": {S}}
REQUESTS: dict[str, dict[str, set[str]]] = {
    "execute_request": {"code": {S}, "silent": {B}, "store_history": {B},
                        "user_expressions": {D}, "allow_stdin": {B}, "stop_on_error": {B}},
    "complete_request": {"code": {S}, "cursor_pos": {INT, N}},
    "inspect_request": {"code": {S}, "cursor_pos": {INT, N}, "detail_level": {INT}},
    "is_complete_request": {"code": {S}},
    "history_request": {"output": {B}, "raw": {B}, "hist_access_type": {S}, "session": {INT},
                        "start": {INT}, "stop": {INT, N}, "n": {INT, N}, "pattern": {S}, "unique": {B}},
    "kernel_info_request": {},
    "comm_info_request": {"target_name": {S, N}},
    "comm_open": {"comm_id": {S}, "target_name": {S}, "data": {D}},
    "comm_msg": {"comm_id": {S}, "data": {D}},
    "comm_close": {"comm_id": {S}, "data": {D}},
    "interrupt_request": {},
    "shutdown_request": {"restart": {B}},
    "usage_request": {},
    "debug_request": {"seq": {INT}, "type": {S}, "command": {S}, "arguments": {D}},
    "ipytui_restore_request": {},
}
# A valid value per field, so that only the mutated field is wrong.
VALID = {S: "x", INT: 1, B: False, D: {}, N: None}
CODE = {"code": "1 + 1", "target_name": "ipytui.presence", "hist_access_type": "tail"}
FRAMES = ("parent_header", "metadata", "content")


def kind(value: Any) -> str:
    """The JSON kind of a decoded value, in the tables' terms."""
    if value is None:
        return N
    for py, name in ((bool, B), (int, INT), (float, "float"), (str, S), (dict, D), (list, "list")):
        if isinstance(value, py):
            return name
    raise TypeError(value)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
HUGE = st.integers(min_value=10_000, max_value=2_000_000).map(lambda n: "y" * n)
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
           | st.floats(allow_nan=False, allow_infinity=False) | TEXT | HUGE)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


def wrong_for(allowed: set[str]) -> st.SearchStrategy[Any]:
    return JSON.filter(lambda value: kind(value) not in allowed)


CONTENT_FIELDS = [(t, name) for t, fields in sorted(REQUESTS.items()) for name in sorted(fields)]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """(msg_type, channel, one bad message as four dicts) with exactly one field wrong.

    The place is drawn first (header, a whole frame, a content field), then the
    field, so every content field of every type is hit about equally often.
    """
    where = draw(st.sampled_from(["header", "frame", "content"]))
    if where == "content":
        msg_type, name = draw(st.sampled_from(CONTENT_FIELDS))
    else:
        msg_type = draw(st.sampled_from(sorted(REQUESTS)))
    channel = draw(st.sampled_from(["shell", "control"]))
    fields = REQUESTS[msg_type]
    parts: dict[str, Any] = {"parent_header": {}, "metadata": {},
                             "content": {field: CODE.get(field, VALID[min(kinds)])
                                         for field, kinds in fields.items()}}
    if where == "header":
        name = draw(st.sampled_from(sorted(HEADER)))
        parts["header_change"] = (name, draw(wrong_for(HEADER[name])))
    elif where == "frame":
        parts[draw(st.sampled_from(FRAMES))] = draw(wrong_for({D}))
    else:
        parts["content"][name] = draw(wrong_for(fields[name]))
    return msg_type, channel, parts


@pytest.fixture
def client(start_kernel) -> Iterator[RawClient]:
    info, _ = start_kernel(IPYTUI_ARGV)
    raw = RawClient(info)
    assert raw.call("shell", "execute_request", {"code": "alive = 1"}).content["status"] == "ok"
    yield raw
    raw.close()


def send(client: RawClient, msg_type: str, channel: str, parts: dict[str, Any]) -> dict[str, Any] | None:
    """Sign and send; the header a reply must name, or None if no reply is possible."""
    header = client.codec.header(msg_type)
    name, value = parts.get("header_change", (None, None))
    if name is not None:
        header[name] = value
    client.send_frames(channel, client.signed(header, parts["content"], parts["parent_header"],
                                              parts["metadata"]))
    answerable = name != "msg_type" and msg_type.endswith("_request")
    return header if answerable else None


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_messages_get_error_replies_and_the_worker_lives(
        client: RawClient, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
    pid = worker_pid(client)
    expected: list[tuple[str, dict[str, Any]]] = []
    for msg_type, channel, parts in batch:
        header = send(client, msg_type, channel, parts)
        if header is not None:
            expected.append((channel, header))
    for channel, header in expected:
        reply: Message = client.reply_to_header(channel, header)
        assert reply.content["status"] == "error", (header, reply.content)
        assert reply.content["ename"] == "BadRequest", reply.content
        assert reply.msg_type == header["msg_type"].removesuffix("_request") + "_reply"
    ran = client.call("shell", "execute_request", {"code": "alive += 1"})
    assert ran.content["status"] == "ok", ran.content
    assert worker_pid(client) == pid
    client.seen.clear()
