"""InputEditor: the multi-line Python input.

Keys (see also the screen's bindings):
  Enter         run when the kernel says the code is complete, else newline + indent
  F5, Ctrl+Enter  run now, complete or not
  Ctrl+J, Alt+Enter  newline (never runs)
  Up / Down     history, from the first / last line
  Ctrl+R        reverse history search
  Tab           completion (indent when only whitespace is left of the cursor)
  F1            help on the name at the cursor

The editor decides nothing about the kernel: it posts messages and the
screen answers through its methods and attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from textual import events
from textual.binding import Binding
from textual.color import Color
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import TextAreaTheme

from .python_highlight import python_highlights, python_lexer, syntax_styles

INDENT = "    "
NEWLINE_KEYS = ("ctrl+j", "alt+enter")  # a line break without running the cell
_DEDENT_AFTER = re.compile(r"^\s*(return|pass|raise|break|continue)\b")
EDITOR_THEME = "ipytui"


def local_indent(line: str) -> str:
    """The indent for the line after ``line``: deeper after a colon, shallower after return."""
    indent = line[: len(line) - len(line.lstrip())]
    stripped = line.rstrip()
    if stripped.endswith(":"):
        return indent + INDENT
    if _DEDENT_AFTER.match(line):
        return indent[: max(0, len(indent) - len(INDENT))]
    return indent


class InputEditor(TextArea):
    """Python input with history, completion and help requests."""

    BINDINGS = [
        Binding("f5,ctrl+enter", "force_run", "Run", key_display="F5"),
        Binding(",".join(NEWLINE_KEYS), "newline", "Newline", show=False),
        Binding("ctrl+r", "history_search", "History search", show=False),
        Binding("f1", "object_help", "Help on name", key_display="F1"),
    ]

    class Submitted(Message):
        """Enter (force=False: run if complete) or the run key (force=True)."""

        def __init__(self, editor: InputEditor, text: str, force: bool, taken: bool = False) -> None:
            super().__init__()
            self.editor = editor
            self.text = text
            self.force = force
            self.taken = taken  # judged complete and already cleared from the editor

        @property
        def control(self) -> InputEditor:
            return self.editor

    class CompletionRequested(Message):
        def __init__(self, text: str, cursor_pos: int) -> None:
            super().__init__()
            self.text = text
            self.cursor_pos = cursor_pos

    class CompletionKey(Message):
        """A key meant for the open completion menu: up, down, accept or dismiss."""

        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action

    class HelpRequested(Message):
        def __init__(self, text: str, cursor_pos: int) -> None:
            super().__init__()
            self.text = text
            self.cursor_pos = cursor_pos

    class HistorySearchRequested(Message):
        pass

    def __init__(self, *, id: str | None = None, blink: bool = True) -> None:
        super().__init__(
            "",
            id=id,
            # "focus" keeps TextArea away from Escape; Tab is ours (see _on_key).
            tab_behavior="focus",
            soft_wrap=True,
            show_line_numbers=False,
            highlight_cursor_line=False,
        )
        self.cursor_blink = blink
        self.indent_width = len(INDENT)
        self.input_history: list[str] = []
        self.completing = False
        # Enter's verdict, given at once when it can be (see _enter): (status, indent) or None.
        self.judge: Callable[[str], tuple[str, str | None] | None] = lambda text: None
        self._history_index: int | None = None
        self._history_draft = ""
        # The syntax colours come with the first highlighted text or the warm-up,
        # whichever is first: an empty editor looks the same without them.
        self._syntax_themed = False

    # -- highlighting ---------------------------------------------------------------
    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        self._highlights.clear()
        highlights = python_highlights(self.text)
        if highlights and not self._syntax_themed:
            self._apply_editor_theme()
        self._highlights.update(highlights)

    def warm_up(self) -> None:
        """Build the lexer and the syntax colours now, at a quiet moment, rather
        than on the first key typed."""
        python_lexer()
        if not self._syntax_themed:
            self._apply_editor_theme()

    def _app_theme_changed(self) -> None:
        self._apply_editor_theme()

    def _apply_editor_theme(self) -> None:
        self._syntax_themed = True
        surface = Color.parse(self.app.theme_variables["surface"])
        self.register_theme(
            TextAreaTheme(
                name=EDITOR_THEME,
                syntax_styles=syntax_styles(self.app.theme_variables, surface),
            )
        )
        self._set_theme(EDITOR_THEME)
        self.theme = EDITOR_THEME
        self._line_cache.clear()
        self.refresh()

    # -- positions ------------------------------------------------------------------
    @property
    def cursor_offset(self) -> int:
        """The cursor as a code-point offset into the text (the protocol's cursor_pos)."""
        return self.document.get_index_from_location(self.cursor_location)

    def location_of(self, offset: int):
        return self.document.get_location_from_index(offset)

    # -- keys -----------------------------------------------------------------------
    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "escape":
            # The menu closes, or the event bubbles to the screen's Escape binding.
            if self.completing:
                event.stop()
                self.post_message(self.CompletionKey("dismiss"))
            return
        if key in ("enter", "tab"):
            event.stop()
            event.prevent_default()
            if self.completing:
                self.post_message(self.CompletionKey("accept"))
            elif key == "enter":
                self._enter()
            else:
                self._tab()
            return
        if key in NEWLINE_KEYS and not self.completing:
            # Here, not only as a binding: a binding runs after the key has bubbled
            # up to the app, and keys typed right after it would land before the break.
            event.stop()
            event.prevent_default()
            self.insert_newline()
            return
        await super()._on_key(event)

    def _enter(self) -> None:
        """Run a complete cell or break the line, right here when ``judge`` can say which:
        keys typed right after Enter then go to the next input, not into this one."""
        text = self.text
        verdict = self.judge(text) if text.strip() else None
        if verdict is None:
            self.post_message(self.Submitted(self, text, force=False))
        else:
            self.apply_verdict(*verdict)

    def apply_verdict(self, status: str, indent: str | None) -> None:
        """Act on an is_complete verdict: break the line if incomplete, else take the
        text (history, then empty) and submit it to run."""
        if status == "incomplete":
            self.insert_newline(indent)
            return
        text = self.text
        self.add_history(text)
        self.set_text("")
        self.post_message(self.Submitted(self, text, force=True, taken=True))

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        return key == "tab" or super().check_consume_key(key, character)

    def _tab(self) -> None:
        row, col = self.cursor_location
        before = self.document[row][:col]
        if not before.strip() or not self.selection.is_empty:
            self.insert(" " * (len(INDENT) - col % len(INDENT)))
            return
        self.post_message(self.CompletionRequested(self.text, self.cursor_offset))

    def action_force_run(self) -> None:
        self.post_message(self.Submitted(self, self.text, force=True))

    def action_newline(self) -> None:
        self.insert_newline()

    def action_history_search(self) -> None:
        self.post_message(self.HistorySearchRequested())

    def action_object_help(self) -> None:
        self.post_message(self.HelpRequested(self.text, self.cursor_offset))

    def insert_newline(self, indent: str | None = None) -> None:
        """Break the line at the cursor; the indent is the kernel's hint or a local guess."""
        row, col = self.cursor_location
        if indent is None or col < len(self.document[row]):
            indent = local_indent(self.document[row][:col])
        self.insert("\n" + indent)

    def action_delete_left(self) -> None:
        row, col = self.cursor_location
        before = self.document[row][:col]
        if self.selection.is_empty and col and not before.strip(" "):
            width = (col - 1) % len(INDENT) + 1
            self.delete((row, col - width), (row, col))
            return
        super().action_delete_left()

    def action_cursor_up(self, select: bool = False) -> None:
        if self.completing and not select:
            self.post_message(self.CompletionKey("up"))
        elif not select and self.cursor_at_first_line and self.input_history:
            self.history_previous()
        else:
            super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if self.completing and not select:
            self.post_message(self.CompletionKey("down"))
        elif not select and self.cursor_at_last_line and self._history_index is not None:
            self.history_next()
        else:
            super().action_cursor_down(select)

    # -- history ------------------------------------------------------------------------
    def history_previous(self) -> None:
        if self._history_index is None:
            self._history_draft = self.text
            self._history_index = len(self.input_history)
        if self._history_index > 0:
            self._history_index -= 1
            entry = self.input_history[self._history_index]
            self.set_text(entry)
            self.move_cursor((0, len(entry.split("\n", 1)[0])))

    def history_next(self) -> None:
        if self._history_index is None:
            return
        self._history_index += 1
        if self._history_index >= len(self.input_history):
            self._history_index = None
            self.set_text(self._history_draft)
        else:
            self.set_text(self.input_history[self._history_index])

    def add_history(self, entry: str) -> None:
        """Remember a run entry (no adjacent duplicates) and stop walking the history."""
        entry = entry.rstrip("\n")
        if entry.strip() and (not self.input_history or self.input_history[-1] != entry):
            self.input_history.append(entry)
        self._history_index = None

    def set_text(self, text: str) -> None:
        """Replace the whole text as one undoable edit, cursor at the end."""
        self.replace(text, (0, 0), self.document.end, maintain_selection_offset=False)
        self.move_cursor(self.document.end)
