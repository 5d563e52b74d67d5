"""MainScreen: the panes, the keys, and the state behind them.

The screen owns the KernelSession and every piece of state (kernel state,
open completion, queued cells); widgets get attributes and method calls,
and tell the screen things through messages. Every kernel request runs as a
worker on Textual's loop, so nothing here waits on the kernel in a handler.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

from ipytui.widgets.completion_menu import CompletionMenu
from ipytui.widgets.crash_banner import CrashBanner
from ipytui.widgets.help_pane import HelpPane
from ipytui.widgets.history_search import HistorySearch
from ipytui.widgets.input_editor import InputEditor
from ipytui.widgets.input_prompt import InputPrompt
from ipytui.widgets.kernel_status import KernelStatus
from ipytui.widgets.output_stream import OutputStream
from ipytui.widgets.peers_panel import PeersPanel
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label

from .assist import InputAssist, local_is_complete
from .completion import Completion
from .config import Config
from .iopub import help_query
from .messages import (
    HeartbeatChanged,
    HistoryLoaded,
    InputRequested,
    IopubBatch,
    KernelReady,
    KernelUnreachable,
)
from .output_router import OutputRouter
from .presence import DRAFT_DEBOUNCE, TARGET, DraftShare, Presence, hello
from .session import KernelSession

IS_COMPLETE_TIMEOUT = 1.0
REQUEST_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
USAGE_SECONDS = 5.0
PRESENCE_RETRY = 3.0


class MainScreen(InputAssist, Screen):
    """Status bar, output stream, input, peers, footer."""

    # Focus lands on the editor as the screen is composed, not on the output first
    # (each focus change makes the footer rebuild itself).
    AUTO_FOCUS = "#editor"

    BINDINGS = [
        Binding("ctrl+c", "interrupt_or_clear", "Interrupt/clear", priority=True, key_display="^C"),
        Binding("f2", "show_keys", "Keys", key_display="F2"),
        Binding("f3", "toggle_peers", "Peers", key_display="F3"),
        # Off the footer (full at 120 columns); the keys page and the palette list it.
        Binding("f4", "toggle_share_draft", "Share draft", key_display="F4", show=False),
        Binding("ctrl+l", "clear_output", "Clear", key_display="^L"),
        Binding("f6", "focus_peers", "Peers list", key_display="F6", show=False, priority=True),
        Binding("f8", "restart", "Restart", key_display="F8"),
        Binding("f9", "restart_restore", "Restore", key_display="F9"),
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

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        volatile = not self.deterministic
        yield KernelStatus(id="status", show_volatile=volatile)
        with Horizontal(id="body"):
            with Vertical(id="main-column"):
                yield CrashBanner(id="banner")
                yield OutputStream(
                    id="output", max_lines=self.config.scrollback_lines, show_times=volatile
                )
                yield HelpPane(id="help")
                yield HistorySearch(id="history-search")
                yield InputPrompt(id="input-prompt")
                with Horizontal(id="input-row"):
                    yield Label("In [ ]:", id="prompt")
                    yield InputEditor(id="editor", blink=volatile)
            yield PeersPanel(id="peers")
        yield CompletionMenu(id="completion")
        yield Footer()

    def _after_first_answer(self) -> None:
        """What start-up leaves until the kernel's first answer is on screen."""
        for editor in self.query(InputEditor):  # none when the screen is coming down
            editor.warm_up()

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

    def connect(self) -> None:
        """Start talking to the kernel before the screen is mounted, so its
        kernel_info answer can arrive while the first frame is built."""
        self.session.connect(READY_TIMEOUT)

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
        self.editor.focus()
        self.run_worker(self._start(), name="kernel-start", exit_on_error=False)
        if not self.deterministic:
            self.run_worker(self._poll_usage(), name="usage", exit_on_error=False)

    async def _start(self) -> None:
        try:
            await self.session.start(READY_TIMEOUT)
        except Exception as exc:  # bad address, refused socket options…
            self.post_message(KernelUnreachable(f"{type(exc).__name__}: {exc}"))
            return
        self._join_presence()
        try:
            entries = await asyncio.wait_for(self.session.history_tail(), REQUEST_TIMEOUT)
        except Exception:
            return
        self.post_message(HistoryLoaded(entries))

    async def close_session(self, *, shutdown: bool = False) -> None:
        await self.session.stop(shutdown=shutdown)

    async def on_unmount(self) -> None:
        await self.session.stop()

    async def _poll_usage(self) -> None:
        """pid and memory from usage_request, while the kernel answers it."""
        failures = 0
        while failures < 2 and not self.session.closed:
            if self.lifecycle == "ok":
                try:
                    usage = await self.session.usage()
                except Exception:
                    usage = {}
                if usage:
                    failures = 0
                    self.status.set(pid=usage.get("pid"), memory=usage.get("kernel_memory"))
                else:
                    failures += 1
            await asyncio.sleep(USAGE_SECONDS)

    # -- kernel state -----------------------------------------------------------------
    def _refresh_state(self) -> None:
        if self.lifecycle != "ok":
            state = self.lifecycle
        elif any(c.status == "running" for c in self.stream.cells.values()):
            state = "busy"
        else:
            state = "idle"
        self.status.set(state=state, execution_count=self.execution_count)
        following = "" if self.execution_count is None else str(self.execution_count + 1)
        self.query_one("#prompt", Label).update(f"In [{following or ' '}]:")

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """The first resume comes just before the first frame: make that frame cheaper
        and, when the kernel has answered already, show it as ready."""
        if self._resumed:
            return
        self._resumed = True
        # Every widget was styled as it mounted, a moment ago: Textual's restyle of the
        # whole screen on resume would redo that work (15-30 ms) before the first frame.
        event.refresh_styles = False
        # The kernel usually answers while the screen is composed, but its KernelReady
        # waits behind this event: without this the first frame would say "starting".
        info = self.session.ready_info
        if info is not None and self.lifecycle == "starting":
            self._shown_early = info
            self._kernel_ready(info)

    def on_kernel_ready(self, message: KernelReady) -> None:
        if message.info is self._shown_early:
            self._shown_early = None  # shown at the first frame already
            return
        self._kernel_ready(message.info)

    def _kernel_ready(self, info: dict[str, Any]) -> None:
        """Show a kernel_info answer: status fields, counts, lifecycle."""
        self.kernel_info_content = info
        extra = info.get("ipytui") if isinstance(info.get("ipytui"), dict) else {}
        impl = info.get("implementation", "")
        version = info.get("implementation_version", "")
        if version and not self.deterministic:
            impl = f"{impl} {version}"
        fields: dict[str, Any] = {"implementation": impl}
        lang = (info.get("language_info") or {}).get("name", "")
        if not self.status.kernel_name and lang:
            fields["kernel_name"] = lang
        fields["pid"] = extra.get("worker_pid") or extra.get("pid") or self.status.pid
        fields["memory"] = (
            extra.get("rss") or extra.get("memory_rss") or extra.get("memory") or self.status.memory
        )
        started = extra.get("started") or extra.get("start_time")
        fields["started_at"] = started if isinstance(started, (int, float)) else None
        if isinstance(extra.get("restarts"), int):
            self.restarts = extra["restarts"]
        fields["restarts"] = self.restarts
        crash = extra.get("last_crash") or extra.get("last_crash_cause")
        if crash:
            fields["last_crash"] = crash if isinstance(crash, str) else str(crash.get("cause", ""))
        if isinstance(extra.get("execution_count"), int):
            self.execution_count = extra["execution_count"]
        fields["heartbeat"] = self.session.heartbeat_ok
        if extra.get("encrypted"):  # the kernel's own word (ours says so in kernel_info)
            fields["encrypted"] = True
        self.status.set(**fields)
        if self.lifecycle == "dead":
            self._presence_retries = 0
            self._rejoin_presence()
        if self.lifecycle == "starting":
            self.call_after_refresh(self._after_first_answer)
        self.lifecycle = "ok"
        if self.banner.kind in ("lost", "unreachable"):
            self.banner.hide()
        self._refresh_state()

    def on_kernel_unreachable(self, message: KernelUnreachable) -> None:
        if self.lifecycle == "starting":
            self.call_after_refresh(self._after_first_answer)
        self.lifecycle = "unreachable"
        self.banner.show_message(
            "unreachable",
            "Cannot reach the kernel",
            [message.reason, "Your input is kept; F8 restarts, Ctrl+Q quits."],
        )
        self._refresh_state()

    def on_heartbeat_changed(self, message: HeartbeatChanged) -> None:
        self.status.set(heartbeat=message.ok)
        if not message.ok:
            if self.lifecycle == "ok":
                self.lifecycle = "dead"
                self.cancel_input()
                self.banner.show_message(
                    "lost",
                    "Kernel not responding (heartbeat lost)",
                    ["Your input and the output are kept; waiting for the kernel to come back."],
                )
        elif self.lifecycle in ("dead", "unreachable"):
            self.run_worker(self.session.wait_ready(READY_TIMEOUT), exit_on_error=False)
        self._refresh_state()

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
        messages = message.messages
        if self.presence is not None:
            own = [m for m in messages if self.presence.owns(m)]
            if own:
                self._on_presence(own)
            messages = [m for m in messages if not self.presence.owns(m) and not self.presence.about_comm(m)]
        result = self.router.apply(messages)
        if result.execution_count is not None:
            self.execution_count = result.execution_count
        for death in result.deaths:
            self.lifecycle = "restarting"
            count = death.get("execution_count")
            where = f"In [{count}]" if count is not None else "a cell"
            self.banner.show_message(
                "crash",
                f"Kernel died: {death.get('evalue') or death.get('ename')}",
                [f"in {where} run by {death.get('who') or '?'}", "Waiting for the recovery report…"],
            )
        for report in result.recovery_reports:
            self._on_recovery(report)
        if result.kernel_started and self.lifecycle in ("restarting", "dead"):
            self.run_worker(self.session.wait_ready(READY_TIMEOUT), exit_on_error=False)
        if result.peers_changed:
            self._show_peers()
        self._refresh_state()

    def _on_recovery(self, report: dict[str, Any]) -> None:
        self.banner.show_report(report)
        self.restarts = report.get("restarts", self.restarts + 1)
        cause = str(report.get("cause") or "crash")
        self.status.set(restarts=self.restarts, last_crash=cause)
        self.lifecycle = "ok"
        self.run_worker(self._refresh_kernel_info(), exit_on_error=False)

    async def _refresh_kernel_info(self) -> None:
        await self.session.wait_ready(REQUEST_TIMEOUT)

    def _show_peers(self) -> None:
        if self.presence is not None and self.presence.active:
            self.peers_panel.set_peers(self.presence.panel_peers(), self.presence.panel_queue())
        elif self.router is not None:
            self.peers_panel.set_peers(list(self.router.peers.values()))

    # -- presence ---------------------------------------------------------------------------
    def _join_presence(self) -> None:
        """Open the presence comm; a kernel without it closes it or stays silent."""
        assert self.presence is not None
        data = hello(self.config.display_name, "ipytui", socket.gethostname())
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
        self.drafts.sent = ""
        self._join_presence()

    def _on_presence(self, messages: list[Any]) -> None:
        assert self.presence is not None and self.router is not None
        was_active = self.presence.active
        update = self.presence.apply(messages)
        if self.presence.active and not was_active:
            self._share_draft()
        if update.peers_changed:
            self.router.set_names(self.presence.names())
        if update.replay:
            self.router.replay(update.replay)
        if update.peers_changed or update.closed:
            self._show_peers()

    @on(InputEditor.Changed, "#editor")
    def _draft_changed(self, event: InputEditor.Changed) -> None:
        self._schedule_draft()

    def _schedule_draft(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(DRAFT_DEBOUNCE, self._share_draft)

    def _share_draft(self) -> None:
        self._draft_timer = None
        if self.presence is None or not self.presence.active or self.session.closed:
            return
        text = self.drafts.due(self.editor.text)
        if text is not None and not self.session.comm_send(
            self.presence.comm_id, {"type": "draft", "text": text}
        ):
            self.drafts.sent = ""  # not sent: try again on the next change

    def action_toggle_share_draft(self) -> None:
        self.drafts.enabled = not self.drafts.enabled
        self._share_draft()  # off: the kernel gets an empty draft once; on: the current one
        self.notify("Sharing your draft" if self.drafts.enabled else "Draft sharing off", timeout=2)

    # -- running code ---------------------------------------------------------------------
    @on(InputEditor.Submitted)
    def _submitted(self, event: InputEditor.Submitted) -> None:
        self._close_completion()
        text = event.text
        if not text.strip():
            return
        query = help_query(text)
        if query is not None:
            name, detail = query
            self.editor.add_history(text)
            self.editor.set_text("")
            self.run_worker(self._inspect(name, len(name), detail, name), exit_on_error=False)
            return
        if event.force:
            self.run_code(text)
            return
        self._submit_seq += 1
        self.run_worker(self._check_and_run(self._submit_seq, text), exit_on_error=False)

    async def _check_and_run(self, seq: int, text: str) -> None:
        verdict, indent = await self._is_complete(text)
        if seq != self._submit_seq or self.editor.text != text:
            return  # the user typed on; this Enter is stale
        if verdict == "incomplete":
            self.editor.insert_newline(indent)
        else:
            self.run_code(text)

    async def _is_complete(self, text: str) -> tuple[str, str | None]:
        # A kernel busy with a cell may answer late: fall back to the stdlib compiler.
        try:
            reply = await asyncio.wait_for(self.session.is_complete(text), IS_COMPLETE_TIMEOUT)
        except Exception:
            return local_is_complete(text), None
        status = reply.get("status", "unknown")
        if status == "unknown":
            return local_is_complete(text), None
        return status, reply.get("indent")

    def run_code(self, code: str) -> None:
        """Queue code for the kernel; it shows as a queued cell until the kernel starts it."""
        assert self.router is not None
        editor = self.editor
        editor.add_history(code)
        editor.set_text("")
        if self.banner.kind == "crash":
            self.banner.hide()
        local_id = f"local-{next(self._ids)}"
        self.router.queue_own(local_id, code)
        self.stream.follow()
        self.run_worker(self._execute(local_id, code), group="execute", exit_on_error=False)

    async def _execute(self, local_id: str, code: str) -> None:
        assert self.router is not None
        learned: list[str] = []

        def learn(msg: Any) -> None:
            # Called by the client as the request's first IOPub arrives, before the
            # batch carrying it reaches the router: the queued cell gets its real id.
            if not learned and msg.parent_id:
                learned.append(msg.parent_id)
                self.router.expect(msg.parent_id, local_id)

        try:
            result = await self.session.execute(code, on_iopub=learn)
        except Exception as exc:
            self._end_pending(local_id, "error", f"{type(exc).__name__}: {exc}")
            return
        content = _reply_content(result)
        status = content.get("status", "ok")
        if status == "aborted":
            self._end_pending(local_id, "aborted", "")
        elif not learned:
            note = f"{content.get('ename')}: {content.get('evalue')}" if status == "error" else ""
            self._end_pending(local_id, status, note)

    def _end_pending(self, local_id: str, status: str, note: str) -> None:
        """A request that ended before the kernel announced it (aborted, failed to send)."""
        assert self.router is not None
        if not self.router.drop_pending(local_id):
            return
        cell = self.stream.cell(local_id)
        if cell is not None:
            if note:
                self.stream.add_output(local_id, Text(note), kind="error")
            cell.set_status(status)
        self._show_peers()
        self._refresh_state()

    # -- input() from a running cell ------------------------------------------------------
    def on_input_requested(self, message: InputRequested) -> None:
        self.cancel_input()
        self._input_future = message.future
        self.query_one(InputPrompt).ask(message.prompt, message.password)

    def on_input_prompt_answered(self, event: InputPrompt.Answered) -> None:
        prompt = self.query_one(InputPrompt)
        future, self._input_future = self._input_future, None
        if future is not None and not future.done():
            future.set_result(event.value)
            shown = "•" * len(event.value) if prompt.password else event.value
            running = [c for c in self.stream.running_cells() if c.own and c.running]
            if running:
                self.stream.append_stream(running[0].cell_id, "stdout", f"{prompt.prompt}{shown}\n")
        prompt.close()
        self.editor.focus()

    def cancel_input(self) -> None:
        """Drop an unanswered input() (interrupt, restart, kernel gone)."""
        future, self._input_future = self._input_future, None
        if future is not None and not future.done():
            future.set_exception(RuntimeError("input request abandoned"))
        prompt = self.query_one(InputPrompt)
        if prompt.is_open:
            prompt.close()
            self.editor.focus()

    # -- keys ---------------------------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        # Typing while the output or the peers list has focus goes to the input.
        readers = (self.stream, self.peers_panel.peer_list)
        if event.is_printable and self.focused in readers and event.character:
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

    def action_interrupt(self) -> None:
        self.cancel_input()
        self.run_worker(self._request("interrupt", self.session.interrupt), exit_on_error=False)
        self.notify("Interrupt sent", timeout=2)

    async def _request(self, what: str, call) -> Any:
        try:
            return await asyncio.wait_for(call(), REQUEST_TIMEOUT)
        except Exception as exc:
            self.notify(f"{what} failed: {type(exc).__name__}: {exc}", severity="error")
            return None

    def action_restart(self) -> None:
        self.run_worker(self._restart(restore=False), group="restart", exclusive=True, exit_on_error=False)

    def action_restart_restore(self) -> None:
        self.run_worker(self._restart(restore=True), group="restart", exclusive=True, exit_on_error=False)

    async def _restart(self, restore: bool) -> None:
        assert self.router is not None
        previous = self.lifecycle
        what = "restart and restore" if restore else "restart"
        self.lifecycle = "restarting"
        self._refresh_state()
        try:
            call = self.session.restore if restore else self.session.restart
            reply = await asyncio.wait_for(call(), REQUEST_TIMEOUT)
            content = getattr(reply, "content", reply) or {}
            if content.get("status") == "error":
                raise RuntimeError(content.get("evalue") or content.get("ename") or "refused")
        except Exception as exc:
            self.lifecycle = previous
            self._refresh_state()
            detail = str(exc) or type(exc).__name__
            self.notify(f"{what} failed: {detail}", severity="warning")
            return
        self.router.abort_unfinished()
        self.cancel_input()
        if restore:
            self.notify(f"Kernel restarted from {content.get('method') or 'its latest state'}")
        else:
            self.execution_count = None
        self.restarts += 1
        self.status.set(restarts=self.restarts)
        self._show_peers()
        await self.session.wait_ready(READY_TIMEOUT)

    def action_clear_output(self) -> None:
        self.stream.clear_all()

    def action_toggle_peers(self) -> None:
        self.peers_panel.toggle_class("-hidden")

    def action_focus_peers(self) -> None:
        """Arrows pick a peer to watch; Escape goes back to the input."""
        panel = self.peers_panel
        panel.remove_class("-hidden")
        panel.focus_list()

    def action_show_keys(self) -> None:
        from .keys_screen import KeysScreen

        self.app.push_screen(KeysScreen())

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
        elif self.focused is self.peers_panel.peer_list:
            self.editor.focus()
        elif self.banner.is_open:
            self.banner.hide()


def _reply_content(result: Any) -> dict[str, Any]:
    """The execute_reply content from whatever the client returned."""
    if isinstance(result, dict):
        return result.get("content", result)
    for name in ("reply", "reply_msg"):
        reply = getattr(result, name, None)
        if reply is not None:
            content = getattr(reply, "content", None)
            if isinstance(content, dict):
                return content
            if isinstance(reply, dict):
                return reply.get("content", reply)
    content = getattr(result, "content", None)
    if isinstance(content, dict):
        return content
    status = getattr(result, "status", None)
    return {"status": status} if isinstance(status, str) else {}
