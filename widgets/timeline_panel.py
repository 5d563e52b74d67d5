"""TimelinePanel: the kernel's restore points, newest last, one selectable row each.

It shows what ``%timeline`` prints (the cell each point follows, who ran it,
when, the names it changed, the memory it holds, the ``%undo N`` that
reaches it), the cells after the newest point, and the cells that can no
longer be undone and why. It draws the kernel's timeline as it is given
(``timeline``, a reactive the screen sets from the kernel's events) and posts
``UndoChosen`` when the user picks a point; it never talks to the kernel.
"""

from __future__ import annotations

import time
from typing import Any

from ipytui.kernel.protocol.sizes import format_size
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


def point_line(point: dict[str, Any]) -> str:
    """One restore point as a row: ``%undo 2  after In [3]  by bob  12:01:02  x, y  1.2 MiB``."""
    step = (f"%undo {point['undo_steps']}" if point.get("undo_steps")
            else "current" if point.get("current", True)
            else "past" if point.get("logged") else "base")
    when = time.strftime("%H:%M:%S", time.localtime(float(point.get("taken") or 0)))
    names = ", ".join(point.get("changed") or []) or "-"
    return (
        f"{step:<8} after In [{point.get('count')}]  by {point.get('user') or '?'}  "
        f"at {when}  changed: {names}  holds {format_size(int(point.get('held') or 0))}"
        + ("  (logged: no fork)" if point.get("logged") else "")
    )


def summary_line(data: dict[str, Any]) -> str:
    return (
        f"{data.get('available', 0)} undo step(s) available (undo_depth "
        f"{data.get('undo_depth', '?')}), protection {data.get('level', '?')}; the points "
        f"hold {format_size(int(data.get('held') or 0))} of the "
        f"{format_size(int(data.get('budget') or 0))} budget"
    )


def notes_lines(data: dict[str, Any]) -> list[str]:
    """The cells the points do not cover, and the points dropped, with why."""
    lines = []
    unprotected = data.get("unprotected") or []
    if unprotected:
        cells = ", ".join(f"In [{c}]" for c in unprotected)
        lines.append(f"{cells}: after the newest restore point, an undo goes back before them")
    lines.extend(f"Not undoable: {gone}" for gone in data.get("gone") or [])
    return lines


class TimelinePanel(Vertical):
    """The restore points as rows; Enter on one posts :class:`UndoChosen`."""

    DEFAULT_CSS = """
    TimelinePanel { height: auto; }
    TimelinePanel > OptionList { height: auto; max-height: 12; }
    """

    timeline: reactive[dict[str, Any]] = reactive(dict, always_update=True)
    """The kernel's timeline (``%timeline``'s data); an empty dict before the first word."""

    class UndoChosen(Message):
        """The user picked a restore point: ``%undo steps`` goes back to it."""

        def __init__(self, steps: int, point: dict[str, Any]) -> None:
            super().__init__()
            self.steps = steps
            self.point = point

    def compose(self) -> ComposeResult:
        yield Static("waiting for the kernel's timeline…", id="timeline-summary")
        yield OptionList(id="timeline-points")
        yield Static("", id="timeline-notes")

    def watch_timeline(self, data: dict[str, Any]) -> None:
        if not self.is_mounted:
            return
        self.query_one("#timeline-summary", Static).update(
            summary_line(data) if data else "waiting for the kernel's timeline…"
        )
        points = self.query_one("#timeline-points", OptionList)
        chosen = points.highlighted
        points.clear_options()
        rows = data.get("points") or []
        for index, point in enumerate(rows):
            points.add_option(
                Option(point_line(point), id=f"point-{index}", disabled=not point.get("undo_steps"))
            )
        if not rows:
            points.add_option(Option("no restore point kept", disabled=True))
        undoable = [i for i, p in enumerate(rows) if p.get("undo_steps")]
        if undoable:
            points.highlighted = chosen if chosen in undoable else undoable[-1]
        notes = notes_lines(data)
        self.query_one("#timeline-notes", Static).update("\n".join(notes))
        self.set_class(not undoable, "-nothing-to-undo")

    def on_mount(self) -> None:
        self.watch_timeline(self.timeline)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        rows = self.timeline.get("points") or []
        option_id = event.option.id or ""
        if not option_id.startswith("point-"):
            return
        point = rows[int(option_id.removeprefix("point-"))]
        if point.get("undo_steps"):
            self.post_message(self.UndoChosen(int(point["undo_steps"]), point))
