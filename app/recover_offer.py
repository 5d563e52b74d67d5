"""RecoverOffer: a stale kernel offered inside the UI (recover / discard / later).

``ipytui`` never asks before its UI is up: it starts a fresh kernel at once,
and this dialog appears once the stale kernels are examined (in a thread),
over a UI that already works. Recover starts a kernel restored from the
checkpoint and the app moves to it; discard forgets the stale kernel; later
(Escape) leaves it for `ipytui recover` or the next start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from ipytui.kernel.tools.recover import Wreck

Answer = Literal["recover", "discard", "later"]


class RecoverOffer(ModalScreen[str]):
    """What went down, what can come back, and three answers."""

    BINDINGS = [
        Binding("r", "answer('recover')", "Recover"),
        Binding("d", "answer('discard')", "Discard"),
        Binding("escape,l", "answer('later')", "Later"),
    ]

    def __init__(self, wreck: Wreck, account: str, more: int = 0) -> None:
        super().__init__()
        self.wreck = wreck
        self.account = account  # recover.describe(wreck), made off the UI thread
        self.more = more

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="recover-dialog"):
            yield Static("A kernel can be recovered", id="recover-title")
            yield Static(self.account, id="recover-account", markup=False)
            if self.more:
                yield Static(f"({self.more} more: `ipytui list`, `ipytui recover ID`)",
                             id="recover-more")
            with Horizontal(id="recover-buttons"):
                yield Button("Recover (r)", id="recover", variant="primary")
                yield Button("Discard (d)", id="discard", variant="error")
                yield Button("Later (Esc)", id="later")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id or "later")

    def action_answer(self, answer: Answer) -> None:
        self.dismiss(answer)
