"""Kernel lifecycle on the screen: start-up, kernel state, crashes, interrupt, restart.

A mixin of MainScreen (it uses the screen's session, status bar, banner and
router). ``lifecycle`` says where the kernel stands (starting, ok, dead,
restarting, unreachable); every handler here moves it and redraws the status
bar and prompt from it, so the user always sees what the kernel is doing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.events import client_name, event_text, plural
from ipytui.widgets.input_editor import InputEditor
from textual.widgets import Label

from .messages import HeartbeatChanged, HistoryLoaded, KernelReady, KernelUnreachable

if TYPE_CHECKING:
    from ipytui.widgets.crash_banner import CrashBanner
    from ipytui.widgets.kernel_status import KernelStatus
    from ipytui.widgets.output_stream import OutputStream
    from textual import events

    from .output_router import OutputRouter, RouteResult
    from .session import KernelSession

REQUEST_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
SLOW_START = 5.0  # seconds without an answer before the screen says it is still waiting
USAGE_SECONDS = 5.0
NAMES_TIMEOUT = 2.0  # F8 asks the kernel how many names it holds; the supervisor answers at once


class KernelLifecycle:
    """Kernel start-up, state, crash recovery, interrupt and restart for MainScreen."""

    session: KernelSession
    router: OutputRouter | None
    lifecycle: str
    execution_count: int | None
    restarts: int
    kernel_info_content: dict[str, Any]
    deterministic: bool
    _resumed: bool
    _shown_early: dict[str, Any] | None
    _presence_retries: int
    _ours: Callable[[], bool]
    status: KernelStatus
    banner: CrashBanner
    stream: OutputStream
    run_code: Any
    show_timeline: Callable[[dict[str, Any]], None]

    # -- start-up --------------------------------------------------------------------
    def connect(self) -> None:
        """Start talking to the kernel before the screen is mounted, so its
        kernel_info answer can arrive while the first frame is built."""
        self.session.connect(READY_TIMEOUT)

    async def _start(self) -> None:
        self.set_timer(SLOW_START, self._still_starting)
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

    def _still_starting(self) -> None:
        """No answer yet (a kernel that is gone, or busy starting): say so, keep waiting."""
        if self.lifecycle != "starting":
            return
        where = getattr(self.app, "connection_file", None) or "the kernel"
        self.banner.show_message("unreachable", "Waiting for the kernel", [
            f"No answer from {where} for {SLOW_START:.0f} s; still trying for up to "
            f"{READY_TIMEOUT:.0f} s. If it went down, `ipytui list` shows it as stale.",
            "Your input is kept; Ctrl+Q quits.",
        ])

    def _after_first_answer(self) -> None:
        """What start-up leaves until the kernel's first answer is on screen."""
        for editor in self.query(InputEditor):  # none when the screen is coming down
            editor.warm_up()

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
                    fields = {"pid": usage.get("pid"), "memory": usage.get("kernel_memory")}
                    extra = usage.get("ipytui")
                    if isinstance(extra, dict) and isinstance(extra.get("protection"), dict):
                        fields["protection"] = extra["protection"]
                    if isinstance(extra, dict) and isinstance(extra.get("timeline"), dict):
                        self.show_timeline(extra["timeline"])
                    self.status.set(**fields)
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
        if isinstance(extra.get("protection"), dict):
            fields["protection"] = extra["protection"]
        fields["heartbeat"] = self.session.heartbeat_ok
        if extra.get("encrypted"):  # the kernel's own word (ours says so in kernel_info)
            fields["encrypted"] = True
        if isinstance(extra.get("disk"), dict):
            fields["disk"] = {str(k): str(v) for k, v in extra["disk"].items()}
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

    # -- crashes and recovery ----------------------------------------------------------
    def _on_kernel_events(self, result: RouteResult) -> None:
        """Deaths, recovery reports and kernel starts seen in one IOPub batch."""
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
        if result.disk is not None:
            self.status.set(disk=result.disk)
        for event in result.events:
            self._on_shared_event(event)
        if result.kernel_started and self.lifecycle in ("restarting", "dead"):
            self.run_worker(self.session.wait_ready(READY_TIMEOUT), exit_on_error=False)

    def _on_recovery(self, report: dict[str, Any]) -> None:
        self.banner.show_report(dict(report, username=client_name(report.get("username"))))
        self.status.set(last_crash=str(report.get("cause") or "crash"))  # the kernel's word
        self.lifecycle = "ok"
        self.run_worker(self._refresh_kernel_info(), exit_on_error=False)

    def _on_shared_event(self, event: dict[str, Any]) -> None:
        """A crash, restart, restore, interrupt or recovery the kernel told every client:
        the status shows the kernel's own facts from it, never a count of ours.
        A timeline event only updates the timeline screen: it comes with every
        changing cell, and the status pane keeps its own pace (kernel_info, usage)."""
        if event.get("event") == "timeline":
            if isinstance(event.get("timeline"), dict):
                self.show_timeline(event["timeline"])
            return
        facts = event.get("status") if isinstance(event.get("status"), dict) else {}
        fields: dict[str, Any] = {}
        if isinstance(facts.get("worker_pid"), int) and facts["worker_pid"]:
            fields["pid"] = facts["worker_pid"]
        if isinstance(facts.get("restarts"), int):
            self.restarts = fields["restarts"] = facts["restarts"]
        if isinstance(facts.get("last_crash"), str):
            fields["last_crash"] = facts["last_crash"]
        self.status.set(**fields)
        kind = event.get("event")
        if kind == "crash" and isinstance(event.get("report"), dict):
            self._on_recovery(event["report"])
        elif kind in ("restart", "restore"):
            assert self.router is not None
            self.router.abort_unfinished()
            self.cancel_input()
            if kind == "restart":
                self.execution_count = None
            self.lifecycle = "ok"
            self.notify(event_text(event), timeout=6)
            self.run_worker(self._refresh_kernel_info(), exit_on_error=False)
        elif kind == "protection":  # the status pane shows the level from kernel_info
            self.run_worker(self._refresh_kernel_info(), exit_on_error=False)
        elif kind == "recovered":
            self.notify(event_text(event), timeout=6)
        elif kind == "undo":  # the %undo cell says it; the status pane's restore point moved
            self.run_worker(self._refresh_kernel_info(), exit_on_error=False)

    async def _refresh_kernel_info(self) -> None:
        await self.session.wait_ready(REQUEST_TIMEOUT)

    # -- interrupt and restart -----------------------------------------------------------
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
        self.run_worker(self._confirm_restart(), group="restart", exclusive=True, exit_on_error=False)

    async def _confirm_restart(self) -> None:
        """F8 empties the namespace of every client: ask first, unless it is empty."""
        names = await self._user_names()
        if names:
            from .confirm_screen import ConfirmScreen  # not at import: UI start-up

            held = (f"The kernel holds {plural(names, 'name')} (as %who lists them); every "
                    f"connected client loses {'it' if names == 1 else 'them'}." if names > 0 else
                    "Every connected client loses the names its cells defined.")
            question = ConfirmScreen("Restart the kernel with an empty namespace?", [
                held, "F9 restarts back at the latest snapshot instead.",
            ])
            if not await self.app.push_screen_wait(question):
                self.notify("Restart cancelled", timeout=2)
                return
        await self._restart(restore=False)

    async def _user_names(self) -> int:
        """How many names the user defined, as the kernel counts them (-1: it does not
        say, but cells have run; 0: empty or unknown and nothing run)."""
        info: dict[str, Any] = {}
        if self.lifecycle == "ok":  # an unreachable kernel would only make F8 wait
            try:
                info = await asyncio.wait_for(self.session.kernel_info(), NAMES_TIMEOUT)
            except Exception:
                info = {}
        extra = info.get("ipytui") if isinstance(info.get("ipytui"), dict) else {}
        if isinstance(extra.get("user_names"), int):
            return extra["user_names"]
        return -1 if self.execution_count else 0

    def action_undo_cell(self) -> None:
        """F10: ``%undo`` the last cell; a cell another peer ran is confirmed first."""
        from ipytui.app.undo_screen import (
            UndoConfirmScreen,
            confirmation_text,
            last_cell,
            undo_code,
        )

        cell = last_cell(list(self.stream.cells.values()))
        if cell is None:
            self.notify("No cell to undo", timeout=2)
            return
        code = undo_code(cell)  # names the cell now: a peer's later cell is not undone
        if cell.own:
            self.run_code(code)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_code(code)

        self.app.push_screen(UndoConfirmScreen(confirmation_text(cell)), answered)

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
        # The kernel's event (to every client, this one included) updates the status
        # and says who did it; here only what this client asked for is wound up.
        self.router.abort_unfinished()
        self.cancel_input()
        if not restore:
            self.execution_count = None
        if not self._ours():  # a kernel that tells no events: our count is all there is
            self.restarts += 1
            self.status.set(restarts=self.restarts)
        self._show_peers()
        await self.session.wait_ready(READY_TIMEOUT)
