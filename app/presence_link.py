"""The screen's end of the presence comm: joining it, the peers panel, draft sharing.

A mixin of MainScreen (it uses the screen's session, router and panes).
``Presence`` and ``DraftShare`` (presence.py) decide; this sends and draws.
A kernel without the comm never answers or closes it, and the panel then
shows the peers the router saw in parent headers.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from .presence import DRAFT_INTERVAL, TARGET, DraftShare, Presence, hello, terminal_tag

if TYPE_CHECKING:
    from ipytui.widgets.input_editor import InputEditor
    from ipytui.widgets.peers_panel import PeersPanel

    from .cluster_view import ClusterView
    from .config import Config
    from .output_router import OutputRouter
    from .session import KernelSession

PRESENCE_RETRY = 3.0


class PresenceLink:
    """Presence comm, peers panel and draft sharing for MainScreen."""

    session: KernelSession
    router: OutputRouter | None
    config: Config
    lifecycle: str
    presence: Presence | None
    drafts: DraftShare
    _draft_timer: Any
    _presence_retries: int
    editor: InputEditor
    peers_panel: PeersPanel
    cluster: ClusterView | None

    def _show_peers(self) -> None:
        if self.presence is not None and self.presence.active:
            self.peers_panel.set_peers(self.presence.panel_peers(), self.presence.panel_queue())
        elif self.router is not None:
            self.peers_panel.set_peers(list(self.router.peers.values()))

    def _take_presence(self, messages: list[Any]) -> list[Any]:
        """Apply the IOPub messages of our presence comm; the others, for the router."""
        if self.presence is None:
            return messages
        own = [m for m in messages if self.presence.owns(m)]
        if own:
            self._on_presence(own)
        return [m for m in messages if not self.presence.owns(m) and not self.presence.about_comm(m)]

    # -- the comm -------------------------------------------------------------------------
    def _join_presence(self) -> None:
        """Open the presence comm; a kernel without it closes it or stays silent."""
        assert self.presence is not None
        data = hello(self.config.display_name, "ipytui", socket.gethostname(), terminal_tag())
        self.session.comm_open(self.presence.comm_id, TARGET, data)
        self.set_timer(PRESENCE_RETRY, lambda comm=self.presence.comm_id: self._join_unanswered(comm))

    def _join_unanswered(self, comm_id: str) -> None:
        """No word on our comm yet: its answer may have gone out before our IOPub reconnected."""
        presence = self.presence
        if presence is None or presence.comm_id != comm_id or presence.supported is not None:
            return
        if self.session.closed or self.lifecycle != "ok" or self._presence_retries >= 3:
            return
        self._presence_retries += 1
        self._rejoin_presence()

    def _rejoin_presence(self) -> None:
        """Back after the heartbeat was lost: the kernel may have dropped us (or be new)."""
        if self.presence is None or self.presence.supported is False:
            return
        self.presence = Presence(own_session=self.session.session_id)
        self.drafts.forget()
        self._join_presence()

    def _on_presence(self, messages: list[Any]) -> None:
        assert self.presence is not None and self.router is not None
        was_active = self.presence.active
        update = self.presence.apply(messages)
        if self.presence.active and not was_active:
            self._share_draft()
        if update.peers_changed:
            self.router.set_names(self.presence.names())
        if update.replay or update.replay_events:
            self.router.replay(update.replay or [], update.replay_events)
            clusters = [e for e in update.replay_events or [] if e.get("event") == "cluster"]
            if clusters and self.cluster is not None:  # joined late: the engines as last told
                self.cluster.on_event(clusters[-1])
                self.refresh_bindings()
        if update.peers_changed or update.closed:
            self._show_peers()

    # -- draft sharing ----------------------------------------------------------------------
    def _schedule_draft(self) -> None:
        """Throttle, not debounce: peers see a fast typist's draft as it grows, and the
        kernel gets at most one draft per DRAFT_INTERVAL; the send reads the text then."""
        if self._draft_timer is None:
            self._draft_timer = self.set_timer(DRAFT_INTERVAL, self._share_draft)

    def _share_draft(self) -> None:
        self._draft_timer = None
        if self.presence is None or not self.presence.active or self.session.closed:
            return
        message = self.drafts.due(self.editor.text, self.editor.cursor_location[0])
        if message is not None and not self.session.comm_send(self.presence.comm_id, message):
            self.drafts.forget()  # not sent: try again on the next change

    def action_toggle_share_draft(self) -> None:
        self.drafts.enabled = not self.drafts.enabled
        self._share_draft()  # off: the kernel gets an empty draft once; on: the current one
        self.notify("Sharing your draft" if self.drafts.enabled else "Draft sharing off", timeout=2)
