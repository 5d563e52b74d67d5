"""F10: take back the last cell (``%undo``), asking first when a peer ran it.

The undo itself is a ``%undo --to C --last C`` cell run by this client (the
cell named when the user confirms), so the kernel attributes it and every
peer sees the entry; the kernel refuses with a reason when nothing can be
undone, or when a later cell changed the state since (see docs/protection.md).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

UNDO_CODE = "%undo"


def last_cell(cells: list[Any]) -> Any | None:
    """The newest finished cell that may have changed the namespace: the one the
    kernel's ``%undo`` takes back (it skips the same inert cells, undos included)."""
    from ipytui.kernel.protocol.inert import is_inert
    from ipytui.kernel.protocol.syntax import transform_cell

    for cell in reversed(cells):
        if cell.status not in ("ok", "error"):
            continue
        try:
            source = transform_cell(cell.code)
        except Exception:  # noqa: BLE001 - a cell we cannot read counts as a change
            return cell
        if not is_inert(source):
            return cell
    return None


def undo_code(cell: Any) -> str:
    """The ``%undo`` that takes back exactly ``cell`` (resolved now, as the user
    confirms): the kernel refuses it if a later cell changed the state meanwhile,
    so a peer's cell finished since is never taken back unseen."""
    count = getattr(cell, "execution_count", None)
    return f"{UNDO_CODE} --to {count} --last {count}" if count else UNDO_CODE


def confirmation_text(cell: Any) -> str:
    """The question for a cell a peer ran: which cell, and whose."""
    count = f"In [{cell.execution_count}]" if cell.execution_count else "the last cell"
    first = (cell.code.strip().splitlines() or [""])[0]
    return f"Undo {count} run by {cell.who or 'another peer'}?\n  {first[:70]}"


class UndoConfirmScreen(ModalScreen[bool]):
    """Asks before taking back a cell another peer ran; dismisses with the answer."""

    BINDINGS = [Binding("y", "answer(True)", "Undo"), Binding("n,escape", "answer(False)", "Keep")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="undo-dialog"):
            yield Static(self.question, id="undo-question")
            yield Static("y undoes it for everyone · n or Escape keeps it", id="undo-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
