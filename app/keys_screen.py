"""KeysScreen: every key of the app on one page (F2)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, str, str]] = [
    ("Input", "Enter", "run when the code is complete, else new line with indent"),
    ("Input", "F5 / Ctrl+Enter", "run now, complete or not"),
    ("Input", "Ctrl+J / Alt+Enter", "new line, never runs"),
    ("Input", "Up / Down", "history, from the first / last line"),
    ("Input", "Ctrl+R", "reverse history search (Ctrl+R again: older)"),
    ("Input", "Tab", "complete the name (indent at line start)"),
    ("Input", "F1", "help on the name at the cursor (also: obj? then Enter)"),
    ("Kernel", "Ctrl+C", "interrupt your running cell; clears the input when idle"),
    ("Kernel", "F8", "restart: an empty namespace for every client (asks first)"),
    ("Kernel", "F9", "restart and restore the latest snapshot; every client is told"),
    ("Kernel", "F10", "undo the last cell (%undo; asks first for a peer's cell)"),
    ("Kernel", "Ctrl+T", "restore points (%timeline): undo to a chosen one (Enter)"),
    ("Output", "Ctrl+L", "clear the output stream"),
    ("Output", "Shift+PgUp / Shift+PgDn", "scroll the output (pauses follow)"),
    ("Output", "Ctrl+End / End", "resume following new output"),
    ("Output", "F7", "select an image or rendered output (again: the one before)"),
    ("Output", "Enter / s", "selected image: full screen / save to a file"),
    ("Output", "t", "selected HTML/LaTeX output: toggle rendered and plain text"),
    ("Window", "F3", "show or hide the peers panel"),
    ("Window", "F6", "pick a peer to watch (arrows; Escape returns to the input)"),
    ("Window", "F4", "share your draft with peers as you type, or stop"),
    ("Window", "F12", "cluster pane: one engine's own stream (again: the next engine)"),
    ("Window", "Escape", "close the menu, search, help pane, cluster pane or banner"),
    ("Window", "Ctrl+P", "command palette (themes too)"),
    ("Window", "F2", "this page"),
    ("Window", "Ctrl+Q", "quit; the kernel keeps running"),
]


def keys_table() -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("", no_wrap=True)
    table.add_column("key", no_wrap=True)
    table.add_column("does")
    last = ""
    for group, key, text in KEYS:
        table.add_row(group if group != last else "", key, text)
        last = group
    return table


class KeysScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f2,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="keys-dialog"):
            yield Static("ipytui keys", id="keys-title")
            yield Static(keys_table(), id="keys-table")
            yield Static("Escape closes this page.", id="keys-hint")
