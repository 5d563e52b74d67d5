"""The Jupyter wire codec: build, sign, serialize, verify and parse messages.

Pure: bytes in, objects out. No sockets, no I/O, so every rule of the
protocol (signature, replay, frame layout, size limits) is unit-testable.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ipytui.kernel.protocol.replay import (
    ReplayError,
    ReplayGuard,
    StaleMessage,
    WindowReplayGuard,
)
from ipytui.kernel.protocol.schema import header_problem
from ipytui.kernel.protocol.signing import SCHEMES, Signer, compare_digest

DELIM = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

__all__ = ["ReplayGuard", "WindowReplayGuard"]  # re-exported: they used to live here


class WireError(ValueError):
    """A message that must be dropped; the text says why (one log line)."""


class BadMessage(WireError):
    """A correctly signed message that cannot be used; ``msg`` holds what could be
    read (a valid header at least), so its sender can get an error reply."""

    def __init__(self, why: str, msg: Message) -> None:
        super().__init__(why)
        self.msg = msg


def utcnow_iso() -> str:
    """ISO 8601 timestamp with a UTC offset, as the spec's header.date wants."""
    return datetime.now(timezone.utc).isoformat()


def new_id() -> str:
    """A fresh message or session id."""
    return uuid.uuid4().hex


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


# One encoder: json.dumps with non-default arguments builds a new JSONEncoder per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default).encode


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes; tolerant of the odd non-JSON value in user data."""
    return _ENCODE(obj).encode("utf-8", "surrogateescape")


def loads(data: bytes) -> Any:
    return json.loads(data)


@dataclass
class Message:
    """One decoded message. ``header`` etc. are plain dicts, as on the wire."""

    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)
    identities: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return self.header.get("msg_type", "")

    @property
    def msg_id(self) -> str:
        return self.header.get("msg_id", "")

    @property
    def parent_id(self) -> str:
        return self.parent_header.get("msg_id", "") if self.parent_header else ""

    def as_dict(self) -> dict[str, Any]:
        """The dict shape jupyter_client uses (msg_id/msg_type at top level)."""
        return {
            "header": self.header,
            "parent_header": self.parent_header,
            "metadata": self.metadata,
            "content": self.content,
            "buffers": self.buffers,
            "msg_id": self.msg_id,
            "msg_type": self.msg_type,
        }


class Codec:
    """Signs, serializes, verifies and parses messages for one key and session.

    An empty key disables signing, as the spec allows. ``check_replay`` makes
    ``deserialize`` refuse a signature it has already seen: among the last few
    thousand, or, with ``replay_window`` (seconds, the kernel's choice), any
    seen while its date is within that window of now; dates outside it are
    refused. ``strict`` (the kernel's choice) checks every header against the
    schema and raises BadMessage, with what was readable, for a signed message
    that is unusable but answerable (bad header types, bad JSON in the other
    frames, oversized).
    """

    def __init__(
        self,
        key: bytes | str = b"",
        signature_scheme: str = "hmac-sha256",
        session: str | None = None,
        username: str | None = None,
        check_replay: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        replay_window: float | None = None,
        strict: bool = False,
    ) -> None:
        if isinstance(key, str):
            key = key.encode("ascii")
        if signature_scheme not in SCHEMES:
            raise ValueError(f"unsupported signature scheme {signature_scheme!r}")
        self.key = key
        self.signature_scheme = signature_scheme
        self._hmac = Signer(key, signature_scheme) if key else None
        self.session = session or new_id()
        self.username = username or os.environ.get("USER", "username")
        self.replay_guard: ReplayGuard | WindowReplayGuard | None = None
        if check_replay:
            self.replay_guard = ReplayGuard() if replay_window is None else WindowReplayGuard(replay_window)
        self.max_message_bytes = max_message_bytes
        self.strict = strict

    # -- building -----------------------------------------------------------
    def header(self, msg_type: str, msg_id: str | None = None) -> dict[str, Any]:
        return {
            "msg_id": msg_id or new_id(),
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session,
            "date": utcnow_iso(),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        parent: Message | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> Message:
        """A new message; ``parent`` may be a Message or a parent header dict."""
        parent_header = parent.header if isinstance(parent, Message) else parent or {}
        return Message(
            header=self.header(msg_type),
            parent_header=parent_header,
            metadata=metadata or {},
            content=content or {},
            buffers=list(buffers or []),
        )

    # -- signing ------------------------------------------------------------
    def sign(self, parts: list[bytes]) -> bytes:
        """Hex HMAC over the four JSON frames; b"" when signing is off."""
        if self._hmac is None:
            return b""
        return self._hmac.sign(parts)

    # -- serializing --------------------------------------------------------
    def serialize(self, msg: Message, identities: list[bytes] | None = None) -> list[bytes]:
        """Frames ready for send_multipart: ids, delimiter, signature, 4 dicts, buffers."""
        parts = [
            dumps(msg.header),
            dumps(msg.parent_header),
            dumps(msg.metadata),
            dumps(msg.content),
        ]
        ids = msg.identities if identities is None else identities
        return [*ids, DELIM, self.sign(parts), *parts, *(bytes(b) for b in msg.buffers)]

    def deserialize(self, frames: list[bytes], content: bool = True) -> Message:
        """Verify and parse received frames, or raise WireError saying why.

        Order matters: nothing is parsed before the signature holds, and
        nothing beyond the (small) header frame of an oversized message.
        """
        ids, rest = split_identities(frames)
        if len(rest) < 5:
            raise WireError(f"truncated message: {len(rest)} frames after the delimiter, need 5")
        size = sum(len(f) for f in rest)
        oversized = size > self.max_message_bytes
        if oversized and not self.strict:
            raise WireError(f"oversized message: {size} bytes > {self.max_message_bytes}")
        signature = bytes(rest[0])
        parts = [bytes(p) for p in rest[1:5]]
        if self._hmac is not None:
            if not signature:
                raise WireError("unsigned message")
            if not compare_digest(self.sign(parts), signature):
                raise WireError("invalid signature")
        identities = [bytes(i) for i in ids]
        header = self._header(parts[0], identities)
        msg = Message(header=header, identities=identities)
        if self._hmac is not None and self.replay_guard is not None:
            try:
                self.replay_guard.admit(signature, header)
            except StaleMessage as exc:
                raise BadMessage(str(exc), msg) from None
            except ReplayError as exc:
                raise WireError(str(exc)) from None
        if oversized:
            raise BadMessage(f"message of {size} bytes is over this kernel's limit of "
                             f"{self.max_message_bytes} bytes", msg)
        try:
            dicts = [_json_object(name, part) for name, part in (
                ("parent_header", parts[1]), ("metadata", parts[2]),
                ("content", parts[3] if content else b"{}"))]
        except WireError as exc:
            if self.strict:
                raise BadMessage(str(exc), msg) from None
            raise
        msg.parent_header, msg.metadata, msg.content = dicts
        msg.buffers = [bytes(b) for b in rest[5:]]
        return msg

    def _header(self, frame: bytes, identities: list[bytes]) -> dict[str, Any]:
        """The parsed header; in strict mode one that fits the schema."""
        header = _json_object("header", frame)
        if not isinstance(header.get("msg_type"), str):
            raise WireError("header is not an object with a msg_type")
        problem = header_problem(header) if self.strict else None
        if problem and _answerable(header):
            raise BadMessage(problem, Message(header=header, identities=identities))
        if problem:
            raise WireError(problem)
        return header


def _answerable(header: dict[str, Any]) -> bool:
    """Whether an error reply can name this message (a request with a string type)."""
    return isinstance(header.get("msg_type"), str) and header["msg_type"].endswith("_request")


def _json_object(name: str, frame: bytes) -> dict[str, Any]:
    """One JSON object frame, or WireError saying what is wrong with it."""
    try:
        value = loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"malformed JSON in the {name}: {exc}") from None
    except RecursionError:
        raise WireError(f"JSON nested too deeply in the {name}") from None
    if not isinstance(value, dict):
        if name == "header":
            raise WireError("header is not an object with a msg_type")
        raise WireError(f"{name} is not a JSON object")
    return value


def frame_limit(max_message_bytes: int) -> int:
    """The socket's per-frame limit (zmq maxmsgsize) for a message limit: a quarter above.

    zmq closes a connection that sends a frame over its limit without a word
    to anyone, and the client waits forever. A frame that reaches the codec
    can still be answered, so frames up to a quarter over the limit get an
    error reply from the kernel; only beyond that does zmq cut the sender off.
    """
    return max_message_bytes + max(max_message_bytes // 4, 64 * 1024)


def split_identities(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split routing ids from the rest at the delimiter, or raise WireError."""
    for i, frame in enumerate(frames):
        if bytes(frame) == DELIM:
            return list(frames[:i]), list(frames[i + 1 :])
    raise WireError("no <IDS|MSG> delimiter")


def peek_header(frames: list[bytes]) -> dict[str, Any]:
    """Parse only the header of already-verified frames (cheap routing decisions)."""
    _, rest = split_identities(frames)
    return loads(rest[1])


def peek_parent(frames: list[bytes]) -> dict[str, Any]:
    """Parse only the parent header of already-verified frames."""
    _, rest = split_identities(frames)
    return loads(rest[2])
