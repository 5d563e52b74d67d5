"""PeerDetail: one peer's live draft and recent inputs, highlighted as Python.

The peers panel hands it a ``Peer``; it redraws whenever it is given a newer
one, so the draft updates live as that peer types. Code is highlighted the
way the output stream highlights cells, and wraps to the panel's width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from .python_highlight import highlight_python

if TYPE_CHECKING:
    from .peer_model import Peer

RECENT_SHOWN = 5
SEPARATOR = "─" * 8


class PeerDetail(VerticalScroll):
    """The selected peer: who, their draft, their last inputs."""

    DEFAULT_CSS = """
    PeerDetail {
        height: auto;
    }
    PeerDetail > Static {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")
        self.peer: Peer | None = None
        self._draft_title = Static(classes="peer-detail-heading")
        self._draft = Static(classes="peer-detail-code")
        self._recent_title = Static("recent inputs", classes="peer-detail-heading")
        self._recent = Static(classes="peer-detail-code")

    def compose(self):
        yield self._draft_title
        yield self._draft
        yield self._recent_title
        yield self._recent

    def show(self, peer: Peer | None) -> None:
        self.peer = peer
        self.set_class(peer is None, "-empty")
        if self.is_mounted:
            self._draw()

    def on_mount(self) -> None:
        self._draw()

    def _draw(self) -> None:
        peer = self.peer
        if peer is None:
            return
        self._draft_title.update(f"{_who(peer)} · draft")
        self._draft.set_class(not peer.draft, "-none")
        self._draft.update(highlight_python(peer.draft) if peer.draft else "(empty)")
        recent = list(reversed(peer.recent[-RECENT_SHOWN:]))
        self._recent.set_class(not recent, "-none")
        if recent:
            self._recent.update(Content(f"\n{SEPARATOR}\n").join(highlight_python(code) for code in recent))
        else:
            self._recent.update("(none)")

    @property
    def plain(self) -> str:
        peer = self.peer
        if peer is None:
            return ""
        lines = [f"{_who(peer)} · draft", peer.draft or "(empty)", "recent inputs"]
        lines.extend(reversed(peer.recent[-RECENT_SHOWN:]))
        return "\n".join(lines)


def _who(peer: Peer) -> str:
    """The peer's label; your own entry says so (picking yourself shows your own draft)."""
    return f"{peer.name} (you)" if peer.is_self else peer.name
