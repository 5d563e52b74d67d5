"""HelpPane: the inspect result (F1 or ``obj?``) for the name at the cursor."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from .mimebundle import ansi_text


class HelpPane(VerticalScroll, can_focus=False):
    """Docstring and signature of an object; Escape closes it."""

    DEFAULT_CSS = """
    HelpPane > Static {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._body = Static()
        self.plain = ""

    def compose(self):
        yield self._body

    def show_help(self, title: str, text: str) -> None:
        """Show an inspect result (ANSI honoured) and open the pane."""
        self.border_title = f"help: {title}" if title else "help"
        body = ansi_text(text) if text else Text("No help found.")
        self.plain = body.plain
        self._body.update(body)
        self.scroll_home(animate=False)
        self.add_class("-open")

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")
