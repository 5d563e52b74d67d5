"""What the peers panel shows: one peer, one entry of the run queue (plain data,
shared by the panel, its detail view and the output stream's attribution)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

PEER_COLOURS = 6  # peer colour slots; the theme (.tcss) says what each one looks like


def peer_colour(session: str) -> int:
    """A peer's colour slot: stable for a session, the same in every UI."""
    return zlib.crc32(session.encode("utf-8")) % PEER_COLOURS


@dataclass
class Peer:
    session: str
    name: str  # the label: tells this peer apart from every other one
    state: str = "idle"
    is_self: bool = False
    kind: str = ""
    host: str = ""
    draft: str = ""
    recent: list[str] = field(default_factory=list)
    cursor: int | None = None  # the draft line their cursor is on

    @property
    def colour(self) -> int:
        return peer_colour(self.session)


@dataclass
class QueueEntry:
    name: str
    state: str = "queued"  # running or queued
    cell: int | None = None
    is_self: bool = False


__all__ = ["PEER_COLOURS", "Peer", "QueueEntry", "peer_colour"]
