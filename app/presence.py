"""Presence: the client side of the ``ipytui.presence`` comm (docs/presence.md).

``Presence`` holds what the kernel last told us (peers, queue, replay) and
turns it into panel rows; ``DraftShare`` decides when the draft is worth
sending. Both are pure: the screen does the sending and the drawing. On a
kernel without the extension (ipykernel closes the comm, or never answers),
``supported`` stays falsy and the screen keeps its parent-header peers.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ipytui.widgets.peer_model import Peer, QueueEntry

TARGET = "ipytui.presence"
MAX_DRAFT = 16 * 1024
DRAFT_INTERVAL = 0.05  # at most one draft message per interval while typing; the last one always goes


@dataclass
class PresenceUpdate:
    """What one batch of presence messages changed."""

    peers_changed: bool = False
    replay: list[dict[str, Any]] | None = None
    replay_events: list[dict[str, Any]] = field(default_factory=list)  # crashes, restarts…
    closed: bool = False


@dataclass
class Presence:
    own_session: str
    comm_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    supported: bool | None = None  # None: not known yet
    peers: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)

    def owns(self, msg: Any) -> bool:
        return (
            msg.msg_type in ("comm_msg", "comm_close")
            and (msg.content or {}).get("comm_id") == self.comm_id
        )

    def about_comm(self, msg: Any) -> bool:
        """Output caused by our own comm messages (ipykernel's "No such comm target")."""
        parent = msg.parent_header or {}
        return parent.get("session") == self.own_session and parent.get("msg_type", "").startswith(
            "comm_"
        )

    def apply(self, messages: list[Any]) -> PresenceUpdate:
        update = PresenceUpdate()
        for msg in messages:
            if msg.msg_type == "comm_close":
                self.supported = False
                update.closed = True
                continue
            data = (msg.content or {}).get("data")
            if not isinstance(data, dict):
                continue
            if data.get("type") == "replay" and isinstance(data.get("cells"), list):
                update.replay = [c for c in data["cells"] if isinstance(c, dict)]
                events = data.get("events")
                update.replay_events = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
            elif data.get("type") == "peers" and isinstance(data.get("peers"), list):
                self.supported = True
                self.peers = [p for p in data["peers"] if isinstance(p, dict)]
                queue = data.get("queue")
                self.queue = [q for q in queue if isinstance(q, dict)] if isinstance(queue, list) else []
                update.peers_changed = True
        return update

    @property
    def active(self) -> bool:
        return bool(self.supported)

    def names(self) -> dict[str, str]:
        """session -> label, for attributing cells: distinct for every peer."""
        labels = {p["session"]: peer_label(p) for p in self.peers if isinstance(p.get("session"), str)}
        twice = {label for label, n in Counter(labels.values()).items() if n > 1}
        # Two peers that say the same about themselves still differ in their session.
        return {s: f"{label} #{s[:4]}" if label in twice else label for s, label in labels.items()}

    def panel_peers(self) -> list[Peer]:
        names = self.names()
        return [self._peer(p, names[p["session"]]) for p in self.peers
                if isinstance(p.get("session"), str)]

    def _peer(self, data: dict[str, Any], label: str) -> Peer:
        session = data["session"]
        recent = data.get("recent")
        cursor = data.get("cursor")
        return Peer(
            session=session,
            name=label,
            state=state_label(data.get("state"), data.get("cell")),
            is_self=session == self.own_session,
            kind=str(data.get("kind") or ""),
            host=str(data.get("host") or ""),
            draft=str(data.get("draft") or ""),
            recent=[r for r in recent if isinstance(r, str)] if isinstance(recent, list) else [],
            cursor=cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None,
        )

    def panel_queue(self) -> list[QueueEntry]:
        names = self.names()
        entries = []
        for item in self.queue:
            session = item.get("session")
            name = names.get(session, "") if isinstance(session, str) else ""
            entries.append(
                QueueEntry(
                    name=name or (session or "?")[:8],
                    state=str(item.get("state") or "queued"),
                    cell=item.get("cell") if isinstance(item.get("cell"), int) else None,
                    is_self=session == self.own_session,
                )
            )
        return entries


def state_label(state: Any, cell: Any) -> str:
    if state == "running":
        return f"running cell [{cell}]" if isinstance(cell, int) else "running"
    return state if state in ("idle", "typing", "queued") else "idle"


def peer_label(data: dict[str, Any]) -> str:
    """``name@host tag``: who, where, and which of their terminals."""
    name = str(data.get("display_name") or data.get("name") or data.get("username") or "")
    name = name or str(data.get("session", "?"))[:8]
    host = str(data.get("host") or "")
    if host and "@" not in name:
        name = f"{name}@{host}"
    tag = str(data.get("tag") or "")
    return f"{name} {tag}" if tag else name


def terminal_tag() -> str:
    """This UI's terminal (``pts/3``), so two UIs of one user differ; empty without one."""
    for fd in (0, 1):
        try:
            return os.ttyname(fd).removeprefix("/dev/")
        except OSError:
            continue
    return ""


def hello(name: str, kind: str, host: str, tag: str = "") -> dict[str, str]:
    return {"name": name, "kind": kind, "host": host, "tag": tag}


@dataclass
class DraftShare:
    """Whether to share, and what the kernel last got from us (text and cursor line)."""

    enabled: bool = True
    sent: str = ""
    sent_cursor: int | None = None

    def due(self, text: str, cursor: int | None = None) -> dict[str, Any] | None:
        """The draft message to send now, or None when it would tell the kernel nothing new."""
        text = _clip(text) if self.enabled else ""
        cursor = min(cursor, text.count("\n")) if cursor is not None and text else None
        if text == self.sent and cursor == self.sent_cursor:
            return None
        self.sent, self.sent_cursor = text, cursor
        message: dict[str, Any] = {"type": "draft", "text": text}
        if cursor is not None:
            message["cursor"] = cursor
        return message

    def forget(self) -> None:
        """The kernel may not have what we sent: the next change goes out whatever it is."""
        self.sent, self.sent_cursor = "", None


def _clip(text: str) -> str:
    """At most MAX_DRAFT bytes of UTF-8, cut on a character boundary (the kernel's limit)."""
    data = text.encode("utf-8")
    return text if len(data) <= MAX_DRAFT else data[: MAX_DRAFT - 64].decode("utf-8", "ignore")
