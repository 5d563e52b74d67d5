"""The wire codec on its own: no sockets, just frames in and messages out."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ipytui.kernel.protocol.wire import (
    DELIM,
    Codec,
    Message,
    ReplayGuard,
    WireError,
    peek_header,
    peek_parent,
    split_identities,
)

KEY = b"a-test-key"


def frames_for(codec: Codec, msg_type: str = "execute_request", content: dict | None = None,
               ids: list[bytes] | None = None, buffers: list[bytes] | None = None) -> list[bytes]:
    msg = codec.msg(msg_type, content if content is not None else {"code": "1 + 1"},
                    buffers=buffers)
    return codec.serialize(msg, ids or [])


# -- round trip -----------------------------------------------------------------
def test_round_trip_keeps_everything() -> None:
    sender, receiver = Codec(KEY, session="s1", username="alice"), Codec(KEY)
    parent = sender.msg("kernel_info_request")
    msg = sender.msg("execute_request", {"code": "print('é')", "silent": False}, parent=parent,
                     metadata={"cellId": "c1"}, buffers=[b"\x00\x01", b""])
    frames = sender.serialize(msg, [b"route-a", b"route-b"])
    got = receiver.deserialize(frames)
    assert got.identities == [b"route-a", b"route-b"]
    assert got.header == msg.header
    assert got.parent_header == parent.header
    assert got.metadata == {"cellId": "c1"}
    assert got.content == {"code": "print('é')", "silent": False}
    assert got.buffers == [b"\x00\x01", b""]
    assert got.msg_type == "execute_request" and got.msg_id == msg.msg_id
    assert got.parent_id == parent.msg_id
    assert got.header["session"] == "s1" and got.header["username"] == "alice"
    assert got.header["version"].startswith("5.")
    assert got.as_dict()["msg_type"] == "execute_request"


def test_frame_layout_and_signature_is_hmac_sha256_of_the_four_dicts() -> None:
    codec = Codec(KEY)
    frames = frames_for(codec, ids=[b"id"])
    assert frames[0] == b"id" and frames[1] == DELIM
    signature, parts = frames[2], frames[3:7]
    h = hmac.new(KEY, digestmod=hashlib.sha256)
    for part in parts:
        h.update(part)
    assert signature == h.hexdigest().encode()
    assert [type(json.loads(p)) for p in parts] == [dict] * 4


def test_other_signature_schemes() -> None:
    codec = Codec(KEY, signature_scheme="hmac-sha512")
    frames = frames_for(codec)
    assert len(frames[1]) == 128
    assert Codec(KEY, signature_scheme="hmac-sha512").deserialize(frames).msg_type == "execute_request"
    with pytest.raises(WireError, match="invalid signature"):
        Codec(KEY).deserialize(frames)
    with pytest.raises(ValueError, match="unsupported signature scheme"):
        Codec(KEY, signature_scheme="rot13")


def test_str_key_equals_bytes_key() -> None:
    assert Codec("k").deserialize(frames_for(Codec(b"k"))).msg_type == "execute_request"


def test_peek_helpers() -> None:
    codec = Codec(KEY)
    parent = codec.msg("kernel_info_request")
    frames = codec.serialize(codec.msg("status", {"execution_state": "idle"}, parent=parent), [b"x"])
    assert peek_header(frames)["msg_type"] == "status"
    assert peek_parent(frames)["msg_id"] == parent.msg_id
    assert split_identities(frames)[0] == [b"x"]


# -- signatures -------------------------------------------------------------------
def test_bad_signature_is_refused() -> None:
    frames = frames_for(Codec(b"other-key"))
    with pytest.raises(WireError, match="invalid signature"):
        Codec(KEY).deserialize(frames)


@pytest.mark.parametrize("index", [2, 3, 4, 5])
def test_any_change_to_a_signed_dict_is_refused(index: int) -> None:
    frames = frames_for(Codec(KEY))
    frames[index] = frames[index][:-1] + b' }'
    with pytest.raises(WireError, match="invalid signature"):
        Codec(KEY).deserialize(frames)


def test_missing_signature_is_refused_when_signing() -> None:
    frames = frames_for(Codec(KEY))
    frames[1] = b""
    with pytest.raises(WireError, match="unsigned"):
        Codec(KEY).deserialize(frames)


def test_empty_key_means_no_signing() -> None:
    plain = Codec(b"")
    frames = frames_for(plain)
    assert frames[1] == b""
    assert Codec(b"").deserialize(frames).content == {"code": "1 + 1"}
    # Without a key any signature is accepted unchecked, as the spec says.
    frames[1] = b"whatever"
    assert Codec(b"").deserialize(frames).msg_type == "execute_request"


def test_signed_message_to_a_keyless_codec_parses() -> None:
    assert Codec(b"").deserialize(frames_for(Codec(KEY))).msg_type == "execute_request"


# -- replays ----------------------------------------------------------------------
def test_replayed_signature_is_refused() -> None:
    sender, receiver = Codec(KEY), Codec(KEY)
    frames = frames_for(sender)
    receiver.deserialize(frames)
    with pytest.raises(WireError, match="replayed"):
        receiver.deserialize(frames)
    # Another message still passes.
    receiver.deserialize(frames_for(sender))


def test_replay_check_can_be_off() -> None:
    frames = frames_for(Codec(KEY))
    receiver = Codec(KEY, check_replay=False)
    receiver.deserialize(frames)
    receiver.deserialize(frames)


def test_a_refused_message_is_not_remembered() -> None:
    """A forged copy must not poison the guard for the real message."""
    sender, receiver = Codec(KEY), Codec(KEY)
    frames = frames_for(sender)
    forged = [*frames]
    forged[5] = b'{"code":"evil"}'
    with pytest.raises(WireError):
        receiver.deserialize(forged)
    assert receiver.deserialize(frames).content == {"code": "1 + 1"}


def test_replay_guard_memory_is_bounded() -> None:
    guard = ReplayGuard(capacity=3)
    for sig in (b"a", b"b", b"c", b"d"):
        assert guard.check_and_add(sig)
    assert not guard.check_and_add(b"d")
    assert len(guard._seen) == 3
    assert guard.check_and_add(b"a")  # the oldest was forgotten


# -- malformed frames ---------------------------------------------------------------
def _signed(codec: Codec, parts: list[bytes], ids: list[bytes] | None = None) -> list[bytes]:
    return [*(ids or []), DELIM, codec.sign(parts), *parts]


def test_no_delimiter() -> None:
    frames = frames_for(Codec(KEY))
    with pytest.raises(WireError, match="delimiter"):
        Codec(KEY).deserialize(frames[1:])
    with pytest.raises(WireError, match="delimiter"):
        Codec(KEY).deserialize([])


@pytest.mark.parametrize("keep", [1, 2, 3, 4, 5])
def test_too_few_frames(keep: int) -> None:
    frames = frames_for(Codec(KEY))
    with pytest.raises(WireError, match="truncated"):
        Codec(KEY).deserialize(frames[:keep])


@pytest.mark.parametrize(("header", "parent", "metadata", "content", "why"), [
    (b"{not json", b"{}", b"{}", b"{}", "malformed JSON"),
    (b'{"msg_type": "x"}', b"{}", b"{}", b"\xff\xfe", "malformed JSON"),
    (b'{"msg_type": "x"}', b"{}", b"{}", b"", "malformed JSON"),
    (b"[]", b"{}", b"{}", b"{}", "header"),
    (b'{"msg_type": 5}', b"{}", b"{}", b"{}", "header"),
    (b'{"msg_type": "x"}', b"[]", b"{}", b"{}", "parent_header"),
    (b'{"msg_type": "x"}', b"{}", b"3", b"{}", "metadata"),
    (b'{"msg_type": "x"}', b"{}", b"{}", b'"text"', "content"),
    (b'{"msg_type": "x"}', b"{}", b"{}", b"null", "content"),
])
def test_malformed_but_signed_json(header: bytes, parent: bytes, metadata: bytes, content: bytes,
                                   why: str) -> None:
    codec = Codec(KEY)
    with pytest.raises(WireError, match=why):
        codec.deserialize(_signed(codec, [header, parent, metadata, content]))


def test_oversized_message_is_refused_before_parsing() -> None:
    codec = Codec(KEY, max_message_bytes=1000)
    with pytest.raises(WireError, match="oversized"):
        codec.deserialize(frames_for(codec, content={"code": "x" * 2000}))
    # Buffers count too.
    with pytest.raises(WireError, match="oversized"):
        codec.deserialize(frames_for(codec, content={}, buffers=[b"\0" * 2000]))
    assert codec.deserialize(frames_for(codec, content={"code": "small"})).content["code"] == "small"


def test_content_can_be_skipped() -> None:
    codec = Codec(KEY)
    msg = codec.deserialize(frames_for(codec), content=False)
    assert msg.content == {} and msg.msg_type == "execute_request"


def test_odd_values_in_content_still_serialize() -> None:
    codec = Codec(KEY)
    msg = codec.msg("display_data", {"set": {1}, "bytes": b"ab", "tuple": (1, 2), "obj": object})
    got = Codec(KEY).deserialize(codec.serialize(msg))
    assert got.content["set"] == [1] and got.content["bytes"] == "ab"
    assert got.content["tuple"] == [1, 2] and "object" in got.content["obj"]


def test_message_defaults() -> None:
    msg = Message(header={"msg_type": "x", "msg_id": "1"})
    assert msg.parent_id == "" and msg.content == {} and msg.buffers == []


# -- fuzzing: bad input is only ever a WireError ---------------------------------------
FRAME = st.binary(max_size=80) | st.sampled_from(
    [DELIM, b"{}", b"[]", b"null", b'{"msg_type": "x"}', b'{"msg_type": 1}', b"\xff"])


@settings(max_examples=400, deadline=None)
@given(st.lists(FRAME, max_size=10), st.sampled_from([b"", KEY]))
def test_fuzz_any_frames_are_a_message_or_a_wire_error(frames: list[bytes], key: bytes) -> None:
    try:
        msg = Codec(key).deserialize(frames)
    except WireError:
        return
    assert isinstance(msg.header, dict) and isinstance(msg.content, dict)


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAME, min_size=4, max_size=4), st.lists(st.binary(max_size=8), max_size=3),
       st.lists(st.binary(max_size=8), max_size=3))
def test_fuzz_signed_garbage_is_a_message_or_a_wire_error(parts: list[bytes], ids: list[bytes],
                                                          buffers: list[bytes]) -> None:
    codec = Codec(KEY)
    ids = [i for i in ids if i != DELIM]
    try:
        msg = codec.deserialize([*_signed(codec, parts, ids), *buffers])
    except WireError:
        return
    assert msg.identities == ids and msg.buffers == buffers
    assert isinstance(msg.msg_type, str)


@settings(max_examples=200)
@given(st.sampled_from(["hmac-sha256", "hmac-sha512", "hmac-md5"]),
       st.binary(max_size=200), st.lists(st.binary(max_size=3000), min_size=1, max_size=5))
def test_signer_agrees_with_the_hmac_module(scheme: str, key: bytes, parts: list[bytes]) -> None:
    """Our OpenSSL-free HMAC gives exactly the standard signature (keys longer than a block too)."""
    from ipytui.kernel.protocol.signing import Signer

    expected = hmac.new(key, b"".join(parts), scheme.removeprefix("hmac-")).hexdigest().encode()
    assert Signer(key, scheme).sign(parts) == expected


def test_large_messages_are_signed_the_same_way() -> None:
    from ipytui.kernel.protocol.signing import LARGE, Signer

    parts = [b"{}", b"x" * (LARGE + 1)]
    expected = hmac.new(b"k", b"".join(parts), "sha256").hexdigest().encode()
    assert Signer(b"k").sign(parts) == expected


def test_send_frames_delivers_the_multipart_message_whole() -> None:
    """The supervisor's fast multipart send: frames arrive whole and in order, as one
    message, on pyzmq's sockets and on a socket class of another make."""
    import zmq
    from ipytui.kernel.supervisor.zmq_send import send_frames

    class Wrapped:
        def __init__(self, sock: zmq.Socket) -> None:
            self.sent: list[list[bytes]] = []
            self.sock = sock

        def send_multipart(self, frames: list[bytes]) -> None:
            self.sent.append(frames)
            self.sock.send_multipart(frames)

    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        port = a.bind_to_random_port("tcp://127.0.0.1")
        b.connect(f"tcp://127.0.0.1:{port}")
        messages = [[b"one"], [b"id", b"<IDS|MSG>", b"", b"{}" * 1000, b"x" * 100_000], [b""] * 7]
        for frames in messages:
            send_frames(a, frames)
        wrapped = Wrapped(a)
        send_frames(wrapped, [b"via", b"fallback"])  # type: ignore[arg-type]
        got = [b.recv_multipart() for _ in range(len(messages) + 1)]
        assert got == [*messages, [b"via", b"fallback"]]
        assert wrapped.sent == [[b"via", b"fallback"]]
    finally:
        ctx.destroy(linger=0)
