"""HistorySearch: reverse search through the input history (Ctrl+R)."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static


class HistorySearch(Vertical):
    """Type to find the newest matching entry; Ctrl+R for older; Enter takes it."""

    BINDINGS = [
        Binding("ctrl+r", "older", "Older match", show=False),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    DEFAULT_CSS = """
    HistorySearch {
        height: auto;
    }
    HistorySearch > Static {
        height: auto;
    }
    """

    class Accepted(Message):
        def __init__(self, entry: str) -> None:
            super().__init__()
            self.entry = entry

    class Cancelled(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: list[str] = []
        self.match_index: int | None = None
        self._input = Input(placeholder="reverse search history…", id="history-query")
        self._preview = Static(id="history-match")

    def compose(self):
        yield self._input
        yield self._preview

    def open(self, history: list[str]) -> None:
        self.history = history
        self.match_index = None
        self._input.value = ""
        self._preview.update("")
        self.add_class("-open")
        self._input.focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    @property
    def match(self) -> str | None:
        return None if self.match_index is None else self.history[self.match_index]

    def _search(self, before: int) -> None:
        query = self._input.value
        for index in range(min(before, len(self.history)) - 1, -1, -1):
            if query in self.history[index]:
                self.match_index = index
                self._preview.update(self.history[index])
                return
        if before >= len(self.history):
            self.match_index = None
            self._preview.update("no match" if query else "")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._search(len(self.history))

    def action_older(self) -> None:
        self._search(len(self.history) if self.match_index is None else self.match_index)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.match is not None:
            self.post_message(self.Accepted(self.match))
        else:
            self.post_message(self.Cancelled())

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())
