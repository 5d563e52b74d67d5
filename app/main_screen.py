"""MainScreen: the panes, the keys, and the state behind them.

The screen owns the KernelSession and every piece of state (kernel state,
open completion, queued cells); widgets get attributes and method calls,
and tell the screen things through messages. Every kernel request runs as a
worker on Textual's loop, so nothing here waits on the kernel in a handler.
The behaviour lives in mixins, one concern each: lifecycle.py (start-up,
kernel state, crashes, interrupt, restart), runner.py (running code and
input()), presence_link.py (peers and draft sharing), assist.py (completion,
help, history search).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ipytui.widgets.cluster_pane import ClusterPane
from ipytui.widgets.completion_menu import CompletionMenu
from ipytui.widgets.crash_banner import CrashBanner
from ipytui.widgets.help_pane import HelpPane
from ipytui.widgets.history_search import HistorySearch
from ipytui.widgets.input_editor import InputEditor
from ipytui.widgets.input_prompt import InputPrompt
from ipytui.widgets.kernel_status import KernelStatus
from ipytui.widgets.output_stream import OutputStream
from ipytui.widgets.peers_panel import PeersPanel
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label

from .assist import InputAssist
from .cluster_view import ClusterView
from .completion import Completion
from .config import Config
from .lifecycle import KernelLifecycle
from .messages import HistoryLoaded, IopubBatch
from .output_actions import OutputActions
from .output_router import OutputRouter
from .presence import DraftShare, Presence
from .presence_link import PresenceLink
from .runner import CodeRunner
from .session import KernelSession


class MainScreen(
    KernelLifecycle, CodeRunner, PresenceLink, InputAssist, OutputActions, Screen
):
    """Status bar, output stream, input, peers, footer."""

    # Focus lands on the editor as the screen is composed, not on the output first
    # (each focus change makes the footer rebuild itself).
    AUTO_FOCUS = "#editor"

    BINDINGS = [
        # First, so the way out is on screen at any width; the kernel keeps running.
        Binding("ctrl+q", "app.quit", "Quit", key_display="^Q", priority=True),
        Binding("ctrl+c", "interrupt_or_clear", "Interrupt/clear", priority=True, key_display="^C"),
        Binding("f2", "show_keys", "Keys", key_display="F2"),
        Binding("f3", "toggle_peers", "Peers", key_display="F3"),
        # Off the footer (full at 120 columns); the keys page and the palette list it.
        Binding("f4", "toggle_share_draft", "Share draft", key_display="F4", show=False),
        Binding("ctrl+l", "clear_output", "Clear", key_display="^L"),
        Binding("f6", "focus_peers", "Peers list", key_display="F6", show=False, priority=True),
        # Priority: the editor (a TextArea) would take F7 as select-all.
        Binding("f7", "select_output", "Select output", key_display="F7", show=False, priority=True),
        Binding("f8", "restart", "Restart", key_display="F8"),
        Binding("f9", "restart_restore", "Restore", key_display="F9"),
        Binding("f10", "undo_cell", "Undo cell", key_display="F10", show=False),
        # On the footer once the kernel has a cluster (check_action).
        Binding("f12", "next_engine", "Engines", key_display="F12"),
        Binding("ctrl+t", "show_timeline", "Timeline", key_display="^T", show=False),
        Binding("escape", "dismiss_overlay", "Close", show=False),
        Binding("shift+pageup", "scroll_output(-1)", "Scroll up", show=False),
        Binding("shift+pagedown", "scroll_output(1)", "Scroll down", show=False),
        Binding("ctrl+end", "follow_output", "Follow output", show=False),
    ]

    def __init__(
        self,
        info: Any,
        *,
        config: Config,
        client_factory=None,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        self.info = info
        self.config = config
        self.deterministic = deterministic
        self.session = KernelSession(
            self, info, username=config.display_name, client_factory=client_factory
        )
        self.router: OutputRouter | None = None
        self.lifecycle = "starting"  # starting, ok, dead, restarting, unreachable
        self.execution_count: int | None = None
        self.restarts = 0
        self.kernel_info_content: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._completion: Completion | None = None
        self._completion_seq = 0
        self._submit_seq = 0
        self._input_future: asyncio.Future[str] | None = None
        self.presence: Presence | None = None
        self.drafts = DraftShare(enabled=config.share_drafts)
        self._draft_timer: Any = None
        self._presence_retries = 0
        self._resumed = False
        self._shown_early: dict[str, Any] | None = None
        self.cluster: ClusterView | None = None
        self.timeline: dict[str, Any] = {}  # the kernel's newest restore-point timeline

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        volatile = not self.deterministic
        yield KernelStatus(id="status", show_volatile=volatile)
        with Horizontal(id="body"):
            with Vertical(id="main-column"):
                yield CrashBanner(id="banner")
                yield OutputStream(
                    id="output",
                    max_lines=self.config.scrollback_lines,
                    show_times=volatile,
                    images=self.config.images,
                )
                yield ClusterPane(id="cluster")
                yield HelpPane(id="help")
                yield HistorySearch(id="history-search")
                yield InputPrompt(id="input-prompt")
                with Horizontal(id="input-row"):
                    yield Label("In [ ]:", id="prompt")
                    yield InputEditor(id="editor", blink=volatile)
            yield PeersPanel(id="peers")
        yield CompletionMenu(id="completion")
        yield Footer()

    @property
    def editor(self) -> InputEditor:
        return self.query_one(InputEditor)

    @property
    def stream(self) -> OutputStream:
        return self.query_one(OutputStream)

    @property
    def status(self) -> KernelStatus:
        return self.query_one(KernelStatus)

    @property
    def banner(self) -> CrashBanner:
        return self.query_one(CrashBanner)

    @property
    def menu(self) -> CompletionMenu:
        return self.query_one(CompletionMenu)

    @property
    def help_pane(self) -> HelpPane:
        return self.query_one(HelpPane)

    @property
    def peers_panel(self) -> PeersPanel:
        return self.query_one(PeersPanel)

    def on_mount(self) -> None:
        self.session.open()
        self.router = OutputRouter(
            self.stream, own_session=self.session.session_id, display_name=self.config.display_name
        )
        self.status.set(
            kernel_name=getattr(self.info, "kernel_name", "") or "",
            remote=not getattr(self.info, "is_loopback", True),
            encrypted=bool(getattr(self.info, "encrypted", False)),
        )
        self.presence = Presence(own_session=self.session.session_id)
        self._show_peers()
        self.editor.judge = self.judge_enter
        self.editor.focus()
        self.run_worker(self._start(), name="kernel-start", exit_on_error=False)
        self.cluster = ClusterView(self.status, self.query_one(ClusterPane))
        self.run_worker(self.cluster.pump(), name="cluster-feed", exit_on_error=False)
        if not self.deterministic:
            self.run_worker(self._poll_usage(), name="usage", exit_on_error=False)

    async def close_session(self, *, shutdown: bool = False) -> None:
        await self.session.stop(shutdown=shutdown)

    async def on_unmount(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        await self.session.stop()

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        own = self.editor.input_history
        merged: list[str] = []
        for entry in [*message.entries, *own]:
            if entry.strip() and (not merged or merged[-1] != entry):
                merged.append(entry)
        self.editor.input_history = merged

    # -- IOPub --------------------------------------------------------------------------
    def on_iopub_batch(self, message: IopubBatch) -> None:
        assert self.router is not None
        result = self.router.apply(self._take_presence(message.messages))
        if result.execution_count is not None:
            self.execution_count = result.execution_count
        self._on_kernel_events(result)
        for event in result.events:
            if event.get("event") == "cluster" and self.cluster is not None:
                self.cluster.on_event(event)
                self.refresh_bindings()  # F12 shows once there are engines
        if result.peers_changed:
            self._show_peers()
        self._refresh_state()

    # Here and not in PresenceLink: Textual collects @on handlers only from classes
    # made by its metaclass, and the mixins are plain classes.
    @on(InputEditor.Changed, "#editor")
    def _draft_changed(self, event: InputEditor.Changed) -> None:
        self._schedule_draft()

    @on(InputEditor.SelectionChanged, "#editor")
    def _cursor_moved(self, event: InputEditor.SelectionChanged) -> None:
        self._schedule_draft()  # peers see the cursor line; sent only when the line changed

    # -- keys ---------------------------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        # Typing while the output or the peers list has focus goes to the input.
        readers = (self.stream, self.peers_panel.peer_list)
        reading = self.focused in readers or self.typing_leaves_output(event.key)
        if event.is_printable and reading and event.character:
            event.stop()
            self.editor.focus()
            self.editor.insert(event.character)

    def own_cells_active(self) -> bool:
        return any(c.own for c in self.stream.running_cells())

    def action_interrupt_or_clear(self) -> None:
        editor = self.editor
        if self.focused is editor and editor.selected_text:
            editor.action_copy()
        elif self.own_cells_active():
            self.action_interrupt()
        elif editor.text:
            editor.set_text("")

    def action_clear_output(self) -> None:
        self.stream.clear_all()

    def action_toggle_peers(self) -> None:
        self.peers_panel.toggle_class("-hidden")

    def action_focus_peers(self) -> None:
        """Arrows pick a peer to watch; Escape goes back to the input."""
        panel = self.peers_panel
        panel.remove_class("-hidden")
        panel.focus_list()

    def action_next_engine(self) -> None:
        """The cluster pane: open it, or show the next engine's stream."""
        if self.cluster is not None:
            self.cluster.next_engine()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_engine":  # hidden from the footer while there is no cluster
            return self.cluster is not None and bool(self.cluster.engines)
        return True

    def action_show_keys(self) -> None:
        from .keys_screen import KeysScreen

        self.app.push_screen(KeysScreen())

    def action_show_timeline(self) -> None:
        """Ctrl+T: the restore points; undo to one (asking first for peers' cells)."""
        from .timeline_screen import TimelineScreen

        def chosen(code: str | None) -> None:
            if code:
                self.run_code(code)

        self.app.push_screen(TimelineScreen(self.timeline, list(self.stream.cells.values())),
                             chosen)

    def show_timeline(self, timeline: dict[str, Any]) -> None:
        """The kernel's word on its restore points (an event, or the usage poll)."""
        from .timeline_screen import TimelineScreen

        if timeline == self.timeline:
            return  # the usage poll repeats it: an open screen keeps its rows as they are
        self.timeline = timeline
        for screen in self.app.screen_stack:
            if isinstance(screen, TimelineScreen):
                screen.show(timeline, list(self.stream.cells.values()))

    def action_scroll_output(self, direction: int) -> None:
        if direction < 0:
            self.stream.scroll_page_up(animate=False)
        else:
            self.stream.scroll_page_down(animate=False)

    def action_follow_output(self) -> None:
        self.stream.follow()

    def action_dismiss_overlay(self) -> None:
        search = self.query_one(HistorySearch)
        if self._completion is not None:
            self._close_completion()
        elif search.is_open:
            search.close()
            self.editor.focus()
        elif self.help_pane.is_open:
            self.help_pane.close()
        elif self.query_one(ClusterPane).is_open:
            self.query_one(ClusterPane).close()
        elif self.focused is self.peers_panel.peer_list or self.output_selected():
            self.editor.focus()
        elif self.banner.is_open:
            self.banner.hide()
