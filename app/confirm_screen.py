"""ConfirmScreen: a yes/no question before a destructive action (F8 restart)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks once; dismisses with True for ``y``, False for ``n`` or Escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", key_display="y"),
        Binding("n,escape", "answer(False)", "No", key_display="n"),
    ]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self._title = title
        self._lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(self._title, id="confirm-title")
            yield Static("\n".join(self._lines), id="confirm-body")
            yield Static("y: yes · n or Escape: no", id="confirm-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
