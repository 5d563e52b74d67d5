"""Help while typing: completion, the help pane, history search, is_complete.

A mixin of MainScreen (it uses the screen's session, editor and panes).
Replies from the kernel arrive while the user keeps typing: each request
carries a sequence number and the text it was made for, and a reply for
text that has changed since is dropped.
"""

from __future__ import annotations

import asyncio
import codeop
from typing import Any

from ipytui.widgets.history_search import HistorySearch
from ipytui.widgets.input_editor import InputEditor
from textual.widgets import TextArea

from .completion import Completion, common_prefix, filter_items, items_from_reply, still_completing
from .iopub import name_at

# Replies are awaited in the background and dropped when stale, so waiting long is
# harmless; a first inspect or complete can take seconds while jedi loads.
REQUEST_TIMEOUT = 30.0
MENU_ROWS = 10


def local_is_complete(code: str) -> str:
    """'complete', 'incomplete' or 'invalid' by the stdlib compiler (kernel busy or away)."""
    try:
        compiled = codeop.compile_command(code, symbol="exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid"
    if compiled is None:
        return "incomplete"
    # A block header that compiles still wants its blank line to end it.
    last = code.rstrip("\n").split("\n")[-1]
    if "\n" in code.strip() and last.startswith((" ", "\t")) and not code.endswith("\n"):
        return "incomplete"
    return "complete"


class InputAssist:
    """Completion, help and history search for MainScreen."""

    _completion: Completion | None
    _completion_seq: int
    session: Any
    editor: InputEditor
    menu: Any
    help_pane: Any

    # -- completion --------------------------------------------------------------------
    def on_input_editor_completion_requested(self, event: InputEditor.CompletionRequested) -> None:
        self._completion_seq += 1
        self.run_worker(
            self._complete(self._completion_seq, event.text, event.cursor_pos),
            group="complete",
            exit_on_error=False,
        )

    async def _complete(self, seq: int, text: str, cursor_pos: int) -> None:
        try:
            reply = await asyncio.wait_for(self.session.complete(text, cursor_pos), REQUEST_TIMEOUT)
        except Exception:
            return
        editor = self.editor
        if seq != self._completion_seq or editor.text != text or editor.cursor_offset != cursor_pos:
            return  # stale: the user moved on
        items = items_from_reply(reply)
        if not items:
            self.app.bell()
            return
        start = int(reply.get("cursor_start", cursor_pos))
        end = int(reply.get("cursor_end", cursor_pos))
        if len(items) == 1:
            self._replace(start, end, items[0].text)
            return
        prefix = common_prefix(items)
        if len(prefix) > end - start:
            self._replace(start, end, prefix)
        self._completion = Completion(start=start, items=items)
        self._filter_completion()

    def _replace(self, start: int, end: int, text: str) -> None:
        editor = self.editor
        editor.replace(
            text,
            editor.location_of(start),
            editor.location_of(end),
            maintain_selection_offset=False,
        )

    def _filter_completion(self) -> None:
        completion = self._completion
        if completion is None:
            return
        editor = self.editor
        cursor = editor.cursor_offset
        typed = editor.text[completion.start : cursor]
        if cursor < completion.start or not still_completing(typed):
            self._close_completion()
            return
        items = filter_items(completion.items, typed)
        if not items:
            self._close_completion()
            return
        menu = self.menu
        menu.show_items(items)
        menu.add_class("-open")
        editor.completing = True
        self._place_menu(len(typed), len(items))

    def _place_menu(self, typed: int, count: int) -> None:
        offset = self.editor.cursor_screen_offset
        rows = min(count, MENU_ROWS) + 2  # borders
        x = max(0, offset.x - typed - 1)
        y = max(0, offset.y - rows)
        self.menu.styles.offset = (x, y)

    def _close_completion(self) -> None:
        self._completion = None
        if self.is_mounted:
            self.menu.remove_class("-open")
            self.editor.completing = False

    def on_input_editor_completion_key(self, event: InputEditor.CompletionKey) -> None:
        menu = self.menu
        if event.action in ("up", "down"):
            menu.move(-1 if event.action == "up" else 1)
        elif event.action == "accept":
            chosen = menu.chosen
            completion = self._completion
            if chosen is not None and completion is not None:
                self._replace(completion.start, self.editor.cursor_offset, chosen.text)
            self._close_completion()
        else:
            self._close_completion()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area.id == "editor" and self._completion is not None:
            self._filter_completion()

    def on_text_area_selection_changed(self, event: TextArea.SelectionChanged) -> None:
        completion = self._completion
        if event.text_area.id != "editor" or completion is None:
            return
        if self.editor.cursor_offset < completion.start:
            self._close_completion()

    # -- help ------------------------------------------------------------------------------
    def on_input_editor_help_requested(self, event: InputEditor.HelpRequested) -> None:
        title = name_at(event.text, event.cursor_pos)
        self.run_worker(
            self._inspect(event.text, event.cursor_pos, 0, title), group="inspect", exit_on_error=False
        )

    async def _inspect(self, code: str, cursor_pos: int, detail: int, title: str) -> None:
        try:
            reply = await asyncio.wait_for(
                self.session.inspect(code, cursor_pos, detail), REQUEST_TIMEOUT
            )
        except Exception as exc:
            self.help_pane.show_help(title, f"help unavailable: {type(exc).__name__}")
            return
        data = reply.get("data") or {}
        text = data.get("text/plain", "") if reply.get("found") else ""
        if not text:
            text = f"No help found for {title or 'the text at the cursor'}."
        self.help_pane.show_help(title, text)

    # -- history search ----------------------------------------------------------------------
    def on_input_editor_history_search_requested(self) -> None:
        self.query_one(HistorySearch).open(self.editor.input_history)

    def on_history_search_accepted(self, event: HistorySearch.Accepted) -> None:
        self.query_one(HistorySearch).close()
        self.editor.set_text(event.entry)
        self.editor.focus()

    def on_history_search_cancelled(self) -> None:
        self.query_one(HistorySearch).close()
        self.editor.focus()
