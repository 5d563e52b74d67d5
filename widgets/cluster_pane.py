"""ClusterPane: one ipyparallel engine's own output stream, one engine at a time.

What an engine prints, its results and errors, as the Hub's IOPub carries
them (the screen subscribes to ``engine.<id>.`` and hands the lines in); the
shared stream has the ``%px`` view of the same, labelled per engine. The
title names the engine, its state and the key that moves to the next one.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Label, RichLog

MAX_LINES = 2000  # lines kept in the pane; an engine's earlier output scrolls away


class ClusterPane(Vertical):
    """A toggleable pane under the output stream (the screen shows and fills it)."""

    DEFAULT_CSS = """
    ClusterPane {
        height: 12;
    }
    ClusterPane > #cluster-title {
        height: 1;
        width: 1fr;
    }
    ClusterPane > RichLog {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-hidden")
        self.engine: int | None = None
        self._title = Label("cluster", id="cluster-title")
        self._log = RichLog(id="cluster-log", max_lines=MAX_LINES, wrap=True, markup=False)

    def compose(self):
        yield self._title
        yield self._log

    @property
    def is_open(self) -> bool:
        return not self.has_class("-hidden")

    def open(self) -> None:
        self.remove_class("-hidden")

    def close(self) -> None:
        self.add_class("-hidden")

    def show_engine(self, engine: int | None, state: str, lines: list[Text]) -> None:
        """Switch to ``engine`` (None: no engine yet) with what it printed so far."""
        self.engine = engine
        self.set_title(state)
        self._log.clear()
        for line in lines:
            self._log.write(line)

    def set_title(self, state: str) -> None:
        """``engine 1 · busy · F12 next engine`` (the state as the kernel last said)."""
        if self.engine is None:
            text = f"cluster · {state}" if state else "cluster · no engines"
        else:
            text = f"engine {self.engine} · {state} · F12 next engine · Esc close"
        self._title.update(text)
        for name in ("up", "busy", "dead"):
            self._title.set_class(state == name, f"-{name}")

    def append(self, line: Text) -> None:
        self._log.write(line)

    @property
    def plain(self) -> str:
        """The pane's text, for tests and the screen reader of a log."""
        return "\n".join(strip.text for strip in self._log.lines)
