"""PeersPanel: the clients attached to the kernel and what they are doing.

For now a peer is a (session, username) seen in IOPub parent headers; the
presence protocol fills in more later. The panel only shows what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


@dataclass
class Peer:
    session: str
    name: str
    state: str = "idle"
    is_self: bool = False


class PeersPanel(Vertical):
    """A toggleable side panel listing peers, you first."""

    COMPONENT_CLASSES = {"peers-panel--self", "peers-panel--state"}

    DEFAULT_CSS = """
    PeersPanel > #peers-title {
        height: 1;
    }
    PeersPanel > OptionList {
        height: 1fr;
    }
    """

    class PeerSelected(Message):
        def __init__(self, peer: Peer) -> None:
            super().__init__()
            self.peer = peer

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peers: list[Peer] = []
        self._list = OptionList(id="peers-list")
        self._list.can_focus = False

    def compose(self):
        yield Static("Peers", id="peers-title")
        yield self._list

    def set_peers(self, peers: list[Peer]) -> None:
        self.peers = sorted(peers, key=lambda p: (not p.is_self, p.name.lower(), p.session))
        self._list.set_options(Option(self._row(p), id=p.session) for p in self.peers)
        self.query_one("#peers-title", Static).update(f"Peers ({len(self.peers)})")

    def _row(self, peer: Peer) -> Text:
        name_style = (
            self.get_component_rich_style("peers-panel--self", partial=True) if peer.is_self else ""
        )
        text = Text("● ")
        text.append(f"{peer.name} (you)" if peer.is_self else peer.name, name_style)
        text.append("\n  ")
        text.append(peer.state, self.get_component_rich_style("peers-panel--state", partial=True))
        return text

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        for peer in self.peers:
            if peer.session == event.option_id:
                self.post_message(self.PeerSelected(peer))

    @property
    def plain(self) -> str:
        return "\n".join(f"{p.name}{' (you)' if p.is_self else ''}: {p.state}" for p in self.peers)
