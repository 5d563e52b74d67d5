"""Ctrl+T: the kernel's restore points (``%timeline`` as a screen), and undo to one.

The screen shows :class:`~ipytui.widgets.timeline_panel.TimelinePanel`, kept
current by the main screen from the kernel's ``timeline`` events. Picking a
point dismisses the screen with the ``%undo --to C --last L`` naming the cells
it takes back (as shown), after the
same question as F10 when a cell it takes back was run by another peer
(naming the cell and its author).
"""

from __future__ import annotations

from typing import Any

from ipytui.widgets.timeline_panel import TimelinePanel
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static


def undone_cells(timeline: dict[str, Any], point: dict[str, Any]) -> list[int]:
    """The state-changing cells an undo to ``point`` takes back."""
    after = int(point.get("count") or 0)
    return [c for c in timeline.get("changed") or [] if isinstance(c, int) and c > after]


def undo_code(undone: list[int], steps: int) -> str:
    """The ``%undo`` naming the cells shown (``--to`` the first, ``--last`` the newest),
    so one that changed the state since the screen was drawn makes the kernel refuse
    instead of taking it back unseen; ``%undo N`` when the timeline lists none."""
    if not undone:
        return f"%undo {steps}"
    return f"%undo --to {min(undone)} --last {max(undone)}"


def peer_cells_text(counts: list[int], cells: list[Any], timeline: dict[str, Any]) -> str:
    """The question for an undo that takes back peers' cells, or "" when all are ours.

    The author of each cell comes from the stream (``who``/``own``), else from the
    timeline's point for that cell; a cell whose author is unknown is asked about.
    """
    by_count = {c.execution_count: c for c in cells if getattr(c, "execution_count", None)}
    users = {p.get("count"): p.get("user") for p in timeline.get("points") or []}
    lines = []
    for count in counts:
        cell = by_count.get(count)
        if cell is not None and cell.own:
            continue
        who = (cell.who if cell is not None else "") or users.get(count) or "another peer"
        first = ((cell.code if cell is not None else "").strip().splitlines() or [""])[0]
        lines.append(f"  In [{count}] run by {who}: {first[:60]}")
    if not lines:
        return ""
    return "Undo cells other peers ran?\n" + "\n".join(lines)


class TimelineScreen(ModalScreen[str | None]):
    """The timeline; dismisses with the ``%undo`` to run, or None."""

    BINDINGS = [Binding("escape,ctrl+t,q", "dismiss_none", "Close")]

    def __init__(self, timeline: dict[str, Any], cells: list[Any]) -> None:
        super().__init__()
        self._timeline = timeline
        self._cells = cells

    def compose(self) -> ComposeResult:
        with Vertical(id="timeline-dialog"):
            yield Static("Restore points (undo to one: arrows, Enter)", id="timeline-title")
            yield TimelinePanel(id="timeline")
            yield Static(
                "Enter undoes to the chosen point for everyone · Escape closes", id="timeline-hint"
            )

    def on_mount(self) -> None:
        self.show(self._timeline, self._cells)
        self.panel.query_one(OptionList).focus()

    @property
    def panel(self) -> TimelinePanel:
        return self.query_one(TimelinePanel)

    def show(self, timeline: dict[str, Any], cells: list[Any]) -> None:
        """The kernel's newest timeline (and the stream's cells, for the authors)."""
        self._timeline, self._cells = timeline, cells
        self.panel.timeline = timeline

    def on_timeline_panel_undo_chosen(self, event: TimelinePanel.UndoChosen) -> None:
        from ipytui.app.undo_screen import UndoConfirmScreen

        undone = undone_cells(self._timeline, event.point)
        code = undo_code(undone, event.steps)
        question = peer_cells_text(undone, self._cells, self._timeline)
        if not question:
            self.dismiss(code)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(code)

        self.app.push_screen(UndoConfirmScreen(question), answered)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
