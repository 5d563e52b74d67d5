"""PeersPanel: the clients attached to the kernel, the execution queue, and one peer's detail.

With the presence extension a peer carries its kind, host, live draft and
recent inputs; without it (a foreign kernel) it is a (session, username) seen
in IOPub parent headers. The panel only shows what it is given. Every other
peer's row shows the last lines of their draft as they type, highlighted,
their cursor line marked, so nobody has to go looking; selecting a peer
(click, or F6 then Enter / arrows) shows the whole draft and recent inputs.
Each row's dot has the peer's colour, the one their cells have in the stream.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.style import Style
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from .peer_detail import PeerDetail
from .peer_model import PEER_COLOURS, Peer, QueueEntry
from .python_highlight import highlight_python

DRAFT_LINES = 4  # lines of a peer's draft shown in their row
CURSOR_MARK = "▸ "
LINE_MARK = "│ "


class PeersPanel(Vertical):
    """A toggleable side panel listing peers, you first, then the queue and the detail."""

    COMPONENT_CLASSES = {
        "peers-panel--self", "peers-panel--state", "peers-panel--where",
        "peers-panel--draft", "peers-panel--cursor",
        *(f"peers-panel--peer-{i}" for i in range(PEER_COLOURS)),
    }

    DEFAULT_CSS = """
    PeersPanel > #peers-title, PeersPanel > #queue-title {
        height: 1;
    }
    PeersPanel > OptionList {
        height: auto;
        max-height: 50%;
    }
    PeersPanel.-no-queue > OptionList {
        height: 1fr;
        max-height: 100%;
    }
    PeersPanel > #queue {
        height: auto;
    }
    PeersPanel > PeerDetail {
        height: 1fr;
    }
    """

    class PeerSelected(Message):
        """A peer was picked (click, Enter or arrows): the screen may react."""

        def __init__(self, peer: Peer) -> None:
            super().__init__()
            self.peer = peer

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peers: list[Peer] = []
        self.queue: list[QueueEntry] = []
        self.selected: str | None = None
        self.add_class("-no-queue")
        self._list = OptionList(id="peers-list")
        self._queue = Static(id="queue")
        self._detail = PeerDetail(id="peer-detail")

    def compose(self):
        yield Static("Peers", id="peers-title")
        yield self._list
        yield Static("Queue", id="queue-title")
        yield self._queue
        yield self._detail

    @property
    def peer_list(self) -> OptionList:
        return self._list

    @property
    def detail(self) -> PeerDetail:
        return self._detail

    def set_peers(self, peers: list[Peer], queue: list[QueueEntry] | None = None) -> None:
        self.peers = sorted(peers, key=lambda p: (not p.is_self, p.name.lower(), p.session))
        # No queue (a kernel without presence): the section hides.
        self.queue = list(queue or [])
        self.set_class(queue is None, "-no-queue")
        self._list.set_options(Option(self._row(p), id=p.session) for p in self.peers)
        self.query_one("#peers-title", Static).update(f"Peers ({len(self.peers)})")
        self._queue.update(self._queue_text())
        index = self._index(self.selected)
        if index is not None:
            self._list.highlighted = index
        self._detail.show(self.peer(self.selected))

    def peer(self, session: str | None) -> Peer | None:
        return next((p for p in self.peers if p.session == session), None)

    def _index(self, session: str | None) -> int | None:
        return next((i for i, p in enumerate(self.peers) if p.session == session), None)

    def select_peer(self, session: str | None) -> None:
        """Show this peer's detail (None: nobody)."""
        self.selected = session
        peer = self.peer(session)
        index = self._index(session)
        if index is not None and self._list.highlighted != index:
            self._list.highlighted = index
        self._detail.show(peer)
        if peer is not None:
            self.post_message(self.PeerSelected(peer))

    def focus_list(self) -> None:
        """Focus the list on the selected peer, else the first other one."""
        self._list.focus()
        if self.selected is None:
            other = next((p for p in self.peers if not p.is_self), None)
            if other is not None:
                self.select_peer(other.session)

    def _style(self, name: str):
        return self.get_component_rich_style(name, partial=True)

    def _row(self, peer: Peer) -> Content:
        text = Text("● ", self._style(f"peers-panel--peer-{peer.colour}"))
        text.append(f"{peer.name} (you)" if peer.is_self else peer.name,
                    self._style("peers-panel--self") if peer.is_self else "")
        text.append("\n  ")
        if peer.kind:
            text.append(peer.kind, self._style("peers-panel--where"))
            text.append(" · ", self._style("peers-panel--state"))
        text.append(peer.state, self._style("peers-panel--state"))
        row = Content.from_rich_text(text)
        if peer.draft and not peer.is_self:
            row = row + "\n" + self._draft_excerpt(peer)
        return row

    def _draft_excerpt(self, peer: Peer) -> Content:
        """The few draft lines around the peer's cursor, highlighted, the cursor line marked."""
        lines = highlight_python(peer.draft).split("\n", allow_blank=True)
        cursor = peer.cursor if peer.cursor is not None else len(lines) - 1
        cursor = max(0, min(cursor, len(lines) - 1))
        start = max(0, min(cursor - DRAFT_LINES // 2, len(lines) - DRAFT_LINES))
        shown = []
        for index in range(start, min(start + DRAFT_LINES, len(lines))):
            at_cursor = index == cursor
            mark = Text(CURSOR_MARK if at_cursor else LINE_MARK,
                        self._style("peers-panel--cursor") if at_cursor else "")
            draft = Style.from_rich_style(self._style("peers-panel--draft"))
            shown.append(Content("  ") + Content.from_rich_text(mark)
                         + lines[index].stylize_before(draft))
        return Content("\n").join(shown)

    def _queue_text(self) -> Text:
        if not self.queue:
            return Text("(empty)", self._style("peers-panel--state"))
        text = Text()
        for i, entry in enumerate(self.queue):
            if i:
                text.append("\n")
            mark = "▶" if entry.state == "running" else "…"
            cell = f" [{entry.cell}]" if entry.cell is not None else ""
            text.append(f"{mark} {entry.name}{' (you)' if entry.is_self else ''}{cell}")
            text.append(f" {entry.state}", self._style("peers-panel--state"))
        return text

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.select_peer(event.option_id)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if self._list.has_focus and event.option_id != self.selected:
            self.select_peer(event.option_id)

    @property
    def plain(self) -> str:
        lines = []
        for p in self.peers:
            lines.append(f"{p.name}{' (you)' if p.is_self else ''}: {p.state}")
            if p.draft and not p.is_self:
                lines.extend(f"  | {line}" for line in p.draft.splitlines()[-DRAFT_LINES:])
        for entry in self.queue:
            cell = f" [{entry.cell}]" if entry.cell is not None else ""
            lines.append(f"queue: {entry.name}{cell} {entry.state}")
        return "\n".join(lines)
