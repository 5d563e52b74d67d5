"""CompletionMenu: the pop-up list of completions, one "text  type  signature" per row.

It never takes focus: the editor keeps typing and forwards the menu keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

MAX_SIGNATURE = 60


@dataclass(frozen=True)
class CompletionItem:
    text: str
    type: str = ""
    signature: str = ""


class CompletionMenu(OptionList, can_focus=False):
    """Completion candidates; the highlighted one is what Enter or Tab inserts."""

    COMPONENT_CLASSES = {"completion-menu--type", "completion-menu--signature"}

    DEFAULT_CSS = """
    CompletionMenu {
        height: auto;
        width: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: list[CompletionItem] = []

    def show_items(self, items: list[CompletionItem]) -> None:
        """Fill the menu and highlight the first item."""
        self.items = list(items)
        width = max((len(i.text) for i in self.items), default=0)
        type_width = max((len(i.type) for i in self.items), default=0)
        type_style = self.get_component_rich_style("completion-menu--type", partial=True)
        sig_style = self.get_component_rich_style("completion-menu--signature", partial=True)
        options = []
        for item in self.items:
            row = Text(item.text.ljust(width), no_wrap=True, overflow="ellipsis")
            if type_width:
                row.append("  ")
                row.append(item.type.ljust(type_width), type_style)
            if item.signature:
                signature = item.signature
                if len(signature) > MAX_SIGNATURE:
                    signature = signature[: MAX_SIGNATURE - 1] + "…"
                row.append("  ")
                row.append(signature, sig_style)
            options.append(Option(row))
        self.set_options(options)
        self.highlighted = 0 if options else None

    def move(self, delta: int) -> None:
        if not self.items:
            return
        current = self.highlighted or 0
        self.highlighted = (current + delta) % len(self.items)

    @property
    def chosen(self) -> CompletionItem | None:
        if self.highlighted is None or not self.items:
            return None
        return self.items[self.highlighted]
