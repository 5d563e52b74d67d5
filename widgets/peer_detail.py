"""PeerDetail: one peer's live draft and recent inputs, highlighted as Python.

The peers panel hands it a ``Peer``; it redraws whenever it is given a newer
one, so the draft updates live as that peer types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.highlight import highlight
from textual.widgets import Static

if TYPE_CHECKING:
    from .peers_panel import Peer

RECENT_SHOWN = 5


class PeerDetail(VerticalScroll):
    """The selected peer: who, their draft, their last inputs."""

    COMPONENT_CLASSES = {"peer-detail--heading", "peer-detail--muted"}

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
        self._body = Static(id="peer-detail-body")

    def compose(self):
        yield self._body

    def show(self, peer: Peer | None) -> None:
        self.peer = peer
        self.set_class(peer is None, "-empty")
        if self.is_mounted:
            self._draw()

    def on_mount(self) -> None:
        self._draw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self._draw()

    def _draw(self) -> None:
        peer = self.peer
        if peer is None:
            self._body.update("")
            return
        heading = self.get_component_rich_style("peer-detail--heading", partial=True)
        muted = self.get_component_rich_style("peer-detail--muted", partial=True)
        parts: list = [Text(f"{peer.name} · draft", heading)]
        if peer.draft:
            parts.append(highlight(peer.draft.rstrip("\n"), language="python"))
        else:
            parts.append(Text("(empty)", muted))
        parts.append(Text("recent inputs", heading))
        recent = peer.recent[-RECENT_SHOWN:]
        if not recent:
            parts.append(Text("(none)", muted))
        for code in reversed(recent):
            parts.append(highlight(code.rstrip("\n"), language="python"))
            parts.append(Text("─" * 8, muted))
        self._body.update(Group(*parts))

    @property
    def plain(self) -> str:
        peer = self.peer
        if peer is None:
            return ""
        lines = [f"{peer.name} · draft", peer.draft or "(empty)", "recent inputs"]
        lines.extend(reversed(peer.recent[-RECENT_SHOWN:]))
        return "\n".join(lines)
