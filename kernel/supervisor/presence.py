"""Who is connected and what they are doing: the kernel's peer table.

Pure bookkeeping, no sockets: the supervisor feeds it what it sees (request
headers, presence comm messages, connect/disconnect notices) and publishes
``snapshot()`` to every open presence comm when ``dirty`` is set.

The extension is a comm target, ``ipytui.presence``; see docs/presence.md.
A peer's entry is keyed by the session of the messages that reach us, so no
client can change another client's entry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("ipytui.supervisor")

TARGET = "ipytui.presence"
MAX_DRAFT = 16 * 1024
MAX_FIELD = 200
MAX_TAG = 40
RECENT_INPUTS = 10
STATES = ("idle", "typing")


class PresenceError(ValueError):
    """A presence message we refuse; the text says why (one log line)."""


@dataclass
class Peer:
    """One connected client as the panel shows it."""

    session: str
    username: str = ""
    name: str = ""
    kind: str = "jupyter"
    host: str = ""
    tag: str = ""  # the client's terminal or session tag: tells two UIs of one user apart
    authenticated: str | None = None
    state: str = "idle"
    cell: int | None = None
    draft: str = ""
    cursor: int | None = None  # the draft line the peer's cursor is on
    recent: list[str] = field(default_factory=list)
    since: float = field(default_factory=time.time)
    routing_ids: set[bytes] = field(default_factory=set)

    @property
    def display_name(self) -> str:
        """The authenticated name wins over anything a client says about itself."""
        return self.authenticated or self.name or self.username or self.session[:8]

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("routing_ids")
        data["display_name"] = self.display_name
        return data


def _text(data: dict[str, Any], key: str, limit: int = MAX_FIELD) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise PresenceError(f"{key!r} must be a string")
    if len(value) > limit:
        raise PresenceError(f"{key!r} is longer than {limit} characters")
    return value


def _cursor(data: dict[str, Any], draft: str) -> int | None:
    """The optional cursor line of a draft: an int within the draft's lines."""
    value = data.get("cursor")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= draft.count("\n"):
        raise PresenceError("'cursor' must be a line number within the draft")
    return value


class PeerTable:
    """The peers, the execution queue, and which comms want updates."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self.comms: dict[str, str] = {}  # presence comm id -> owning session
        self.queue: list[dict[str, Any]] = []  # executes in arrival order
        self.dirty = False

    # -- what the supervisor sees ------------------------------------------
    def seen(self, header: dict[str, Any], identities: list[bytes],
             authenticated: str | None = None) -> Peer | None:
        """A request arrived: make sure its sender is in the table."""
        session = header.get("session")
        if not isinstance(session, str) or not session:
            return None
        peer = self.peers.get(session)
        if peer is None:
            username = header.get("username")
            peer = Peer(session=session, username=username if isinstance(username, str) else "")
            self.peers[session] = peer
            self.dirty = True
        if identities:
            peer.routing_ids.add(identities[0])
        if authenticated and peer.authenticated != authenticated:
            peer.authenticated = authenticated
            self.dirty = True
        return peer

    def disconnected(self, routing_id: bytes) -> None:
        """A shell connection closed: a peer with no connection left is gone."""
        for session, peer in list(self.peers.items()):
            if routing_id in peer.routing_ids:
                peer.routing_ids.discard(routing_id)
                if not peer.routing_ids:
                    self._remove(session)

    def _remove(self, session: str) -> None:
        self.peers.pop(session, None)
        self.comms = {c: s for c, s in self.comms.items() if s != session}
        self.queue = [q for q in self.queue if q["session"] != session or q["state"] == "running"]
        self.dirty = True

    # -- the execution queue ---------------------------------------------
    def queued(self, session: str, msg_id: str, code: str) -> None:
        self.queue.append({"session": session, "msg_id": msg_id, "state": "queued", "cell": None})
        peer = self.peers.get(session)
        if peer is not None:
            peer.recent = [*peer.recent, code][-RECENT_INPUTS:]
            if peer.state != "running":
                peer.state = "queued"
        self.dirty = True

    def running(self, msg_id: str, cell: int) -> None:
        for item in self.queue:
            if item["msg_id"] == msg_id:
                item.update(state="running", cell=cell)
                peer = self.peers.get(item["session"])
                if peer is not None:
                    peer.state, peer.cell = "running", cell
                self.dirty = True

    def finished(self, msg_id: str) -> None:
        item = next((q for q in self.queue if q["msg_id"] == msg_id), None)
        if item is None:
            return
        self.queue.remove(item)
        peer = self.peers.get(item["session"])
        if peer is not None:
            waiting = any(q["session"] == peer.session for q in self.queue)
            peer.state, peer.cell = ("queued" if waiting else "idle"), None
        self.dirty = True

    # -- the presence comm ---------------------------------------------------
    def open_comm(self, comm_id: str, session: str, data: dict[str, Any]) -> None:
        peer = self.peers.get(session)
        if peer is None:
            raise PresenceError("comm_open from an unknown session")
        self.comms[comm_id] = session
        self.update(comm_id, session, {"type": "hello", **data})

    def close_comm(self, comm_id: str, session: str) -> None:
        if self.comms.get(comm_id) == session:
            del self.comms[comm_id]

    def update(self, comm_id: str, session: str, data: dict[str, Any]) -> None:
        """Apply a client's own presence message; refuses anything for another peer."""
        if self.comms.get(comm_id) != session:
            raise PresenceError("this comm belongs to another peer")
        peer = self.peers[session]
        kind = data.get("type")
        if kind == "hello":
            # Checked whole before any field changes: a refused hello leaves the entry as it was.
            fields = (_text(data, "name"), _text(data, "kind") or "ipytui", _text(data, "host"),
                      _text(data, "tag", MAX_TAG))
            peer.name, peer.kind, peer.host, peer.tag = fields
        elif kind == "draft":
            draft = _text(data, "text", MAX_DRAFT)
            peer.draft, peer.cursor = draft, _cursor(data, draft)
            if peer.state in STATES:
                peer.state = "typing" if peer.draft else "idle"
        elif kind == "state":
            state = _text(data, "state")
            if state not in STATES:
                raise PresenceError(f"unknown state {state!r}")
            if peer.state in STATES:
                peer.state = state
        else:
            raise PresenceError(f"unknown presence message type {repr(kind)[:60]}")
        self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        """Everything a panel shows, as one small message."""
        self.dirty = False
        return {"type": "peers", "peers": [p.public() for p in self.peers.values()],
                "queue": [dict(q) for q in self.queue]}
