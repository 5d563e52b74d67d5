"""The Jupyter wire codec: build, sign, serialize, verify and parse messages.

Pure: bytes in, objects out. No sockets, no I/O, so every rule of the
protocol (signature, replay, frame layout, size limits) is unit-testable.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ipytui.kernel.protocol.signing import SCHEMES, Signer, compare_digest

DELIM = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024



class WireError(ValueError):
    """A message that must be dropped; the text says why (one log line)."""


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


class ReplayGuard:
    """Remembers recent signatures (bounded) so a replayed message is refused."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def check_and_add(self, signature: bytes) -> bool:
        """True if the signature is new (and now remembered), False on a replay."""
        if signature in self._seen:
            return False
        self._seen[signature] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


class Codec:
    """Signs, serializes, verifies and parses messages for one key and session.

    An empty key disables signing, as the spec allows. ``check_replay`` makes
    ``deserialize`` refuse a signature it has already seen.
    """

    def __init__(
        self,
        key: bytes | str = b"",
        signature_scheme: str = "hmac-sha256",
        session: str | None = None,
        username: str | None = None,
        check_replay: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
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
        self.replay_guard = ReplayGuard() if check_replay else None
        self.max_message_bytes = max_message_bytes

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
        """Verify and parse received frames, or raise WireError saying why."""
        ids, rest = split_identities(frames)
        if len(rest) < 5:
            raise WireError(f"truncated message: {len(rest)} frames after the delimiter, need 5")
        size = sum(len(f) for f in rest)
        if size > self.max_message_bytes:
            raise WireError(f"oversized message: {size} bytes > {self.max_message_bytes}")
        signature = bytes(rest[0])
        parts = [bytes(p) for p in rest[1:5]]
        if self._hmac is not None:
            if not signature:
                raise WireError("unsigned message")
            expected = self.sign(parts)
            if not compare_digest(expected, signature):
                raise WireError("invalid signature")
            if self.replay_guard is not None and not self.replay_guard.check_and_add(signature):
                raise WireError("replayed signature")
        try:
            header = loads(parts[0])
            parent = loads(parts[1])
            metadata = loads(parts[2])
            body = loads(parts[3]) if content else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise WireError(f"malformed JSON: {exc}") from None
        except RecursionError:
            raise WireError("JSON nested too deeply") from None
        if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
            raise WireError("header is not an object with a msg_type")
        for name, value in (("parent_header", parent), ("metadata", metadata), ("content", body)):
            if not isinstance(value, dict):
                raise WireError(f"{name} is not a JSON object")
        return Message(
            header=header,
            parent_header=parent,
            metadata=metadata,
            content=body,
            buffers=[bytes(b) for b in rest[5:]],
            identities=[bytes(i) for i in ids],
        )


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
