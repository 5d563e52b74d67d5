"""Running code: Enter in the editor, the execute request, and input() from a cell.

A mixin of MainScreen (it uses the screen's session, router, editor and
output stream). A submitted cell shows at once as a queued cell under a
local id; the kernel's first IOPub message for the request gives it its
real id, and a request that ends before that (aborted, failed to send) is
closed here so no cell waits forever.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ipytui.widgets.input_prompt import InputPrompt
from rich.text import Text

from .assist import local_is_complete
from .iopub import help_query

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ipytui.widgets.crash_banner import CrashBanner
    from ipytui.widgets.help_pane import HelpPane
    from ipytui.widgets.input_editor import InputEditor
    from ipytui.widgets.kernel_status import KernelStatus
    from ipytui.widgets.output_stream import OutputStream

    from .messages import InputRequested
    from .output_router import OutputRouter
    from .session import KernelSession

IS_COMPLETE_TIMEOUT = 1.0


class CodeRunner:
    """Submitting, executing and answering input() for MainScreen."""

    session: KernelSession
    router: OutputRouter | None
    _ids: Iterator[int]
    _submit_seq: int
    _input_future: asyncio.Future[str] | None
    editor: InputEditor
    stream: OutputStream
    banner: CrashBanner
    help_pane: HelpPane
    status: KernelStatus

    # -- submitting ---------------------------------------------------------------------
    def on_input_editor_submitted(self, event: InputEditor.Submitted) -> None:
        self._close_completion()
        text = event.text
        if not text.strip():
            return
        query = help_query(text)
        if query is not None:
            name, detail = query
            if not event.taken:
                self.editor.add_history(text)
                self.editor.set_text("")
            self.run_worker(self._inspect(name, len(name), detail, name), exit_on_error=False)
            return
        if event.force:
            self.run_code(text, taken=event.taken)
            return
        self._submit_seq += 1
        self.run_worker(self._check_and_run(self._submit_seq, text), exit_on_error=False)

    def judge_enter(self, text: str) -> tuple[str, str | None] | None:
        """The editor's Enter verdict without a round trip: an ipytui kernel's is_complete
        answer, computed here by the same pure code. None: ask the kernel."""
        if not self._ours():
            return None
        from ipytui.kernel.protocol.completeness import cell_is_complete

        try:
            reply = cell_is_complete(text)
        except Exception:  # noqa: BLE001 - the kernel's own answer is the fallback
            return None
        return reply["status"], reply.get("indent")

    async def _check_and_run(self, seq: int, text: str) -> None:
        verdict, indent = await self._is_complete(text)
        if seq != self._submit_seq or self.editor.text != text:
            return  # the user typed on; this Enter is stale
        self.editor.apply_verdict(verdict, indent)

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

    # -- executing ----------------------------------------------------------------------
    def run_code(self, code: str, *, taken: bool = False) -> None:
        """Queue code for the kernel; it shows as a queued cell until the kernel starts it.

        ``taken``: the editor already cleared itself and kept the history (Enter judged
        there); whatever was typed since stays.
        """
        assert self.router is not None
        editor = self.editor
        if not taken:
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
        self._apply_payloads(content.get("payload"))
        if self._ours():
            self.run_worker(self._refresh_protection(), group="protection", exit_on_error=False)
        status = content.get("status", "ok")
        if status == "aborted":
            self._end_pending(local_id, "aborted", "")
        elif not learned:
            note = f"{content.get('ename')}: {content.get('evalue')}" if status == "error" else ""
            self._end_pending(local_id, status, note)

    async def _refresh_protection(self) -> None:
        """A cell may change the protection level or the restore point: show the kernel's word."""
        info = await asyncio.wait_for(self.session.kernel_info(), 5.0)
        extra = info.get("ipytui") if isinstance(info, dict) else None
        if isinstance(extra, dict) and isinstance(extra.get("protection"), dict):
            self.status.set(protection=extra["protection"])

    def _apply_payloads(self, payloads: Any) -> None:
        """What the reply asks of this client: page text, fill the editor, or leave."""
        for payload in payloads if isinstance(payloads, list) else []:
            source = payload.get("source") if isinstance(payload, dict) else None
            if source == "page":
                data = payload.get("data")
                text = data.get("text/plain") if isinstance(data, dict) else None
                if isinstance(text, str) and text:
                    self.help_pane.show_help("", text)
            elif source == "set_next_input" and isinstance(payload.get("text"), str):
                self._set_next_input(payload["text"])
            elif source == "ask_exit":
                self._ask_exit(stop_kernel=payload.get("ipytui_shutdown") is True)

    def _set_next_input(self, text: str) -> None:
        """``%load`` and friends: into the editor, after anything typed meanwhile."""
        draft = self.editor.text
        self.editor.set_text(f"{draft.rstrip()}\n{text}" if draft.strip() else text)
        self.editor.focus()

    def _ask_exit(self, stop_kernel: bool) -> None:
        """``exit`` in a cell: leave this client, as Ctrl+Q does.

        The kernel is shut down too only when asked for: ``--shutdown-on-exit``,
        or ``exit(keep_kernel=False)`` on an ipytui kernel (its payload's
        ``ipytui_shutdown``).
        The payload's ``keepkernel: False`` (IPython's, on a plain ``exit``) is
        not enough: it would end the session of every other client.
        """
        shutdown = self.app.shutdown_on_exit or (stop_kernel and self._ours())
        self.app.call_later(self.app.quit_session, shutdown=shutdown)

    def _ours(self) -> bool:
        """Whether the kernel is an ipytui kernel (its kernel_info says so)."""
        from ipytui.kernel.protocol.info import IMPLEMENTATION  # not at import: UI start-up

        return (self.session.ready_info or {}).get("implementation") == IMPLEMENTATION

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
