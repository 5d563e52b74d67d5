"""What the peers panel shows: one peer, one entry of the run queue (plain data,
shared by the panel and its detail view)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Peer:
    session: str
    name: str
    state: str = "idle"
    is_self: bool = False
    kind: str = ""
    host: str = ""
    draft: str = ""
    recent: list[str] = field(default_factory=list)


@dataclass
class QueueEntry:
    name: str
    state: str = "queued"  # running or queued
    cell: int | None = None
    is_self: bool = False


__all__ = ["Peer", "QueueEntry"]
