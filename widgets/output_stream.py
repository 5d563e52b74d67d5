"""OutputStream: the shared output of every client, one CellView per cell.

It follows new output (anchored to the bottom) until the user scrolls up;
End (or ``follow()``) resumes. Scrollback is bounded: past ``max_lines``
the oldest cells go and a notice says how many lines were dropped.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from .cell_view import CellView
from .image_data import ImageData
from .image_output import ImageOutput
from .rich_output import RichOutput

Shown = RichOutput | ImageOutput

TICK_SECONDS = 0.1
# Pictures kept decoded in the scrollback; past this the oldest become labels.
IMAGE_MEMORY_BUDGET = 256 * 1024 * 1024


class OutputStream(VerticalScroll):
    """The scrolling list of cells."""

    BINDINGS = [
        Binding("end", "follow", "Follow output", show=False),
    ]

    DEFAULT_CSS = """
    OutputStream {
        height: 1fr;
    }
    OutputStream > #dropped-notice {
        height: auto;
    }
    """

    def __init__(
        self,
        *,
        max_lines: int = 10_000,
        show_times: bool = True,
        images: str = "auto",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.images = images
        self.image_budget = IMAGE_MEMORY_BUDGET
        self.max_lines = max_lines
        self.show_times = show_times
        self.dropped_lines = 0
        self.cells: dict[str, CellView] = {}
        self._displays: dict[str, list[Shown]] = {}
        self._notice = Static(id="dropped-notice")
        self._notice.display = False

    def compose(self):
        yield self._notice

    def on_mount(self) -> None:
        self.anchor()
        if self.show_times:
            self.set_interval(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        for cell in self.cells.values():
            if cell.running:
                cell.tick()

    # -- follow mode ----------------------------------------------------------------
    @property
    def following(self) -> bool:
        # Textual keeps "anchor released by the user" privately; read it in one place.
        return self.is_anchored and not getattr(self, "_anchor_released", False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._show_follow_state()

    def _show_follow_state(self) -> None:
        paused = not self.following
        if paused != self.has_class("-paused"):
            self.set_class(paused, "-paused")
            self.border_subtitle = "follow paused · End resumes" if paused else ""

    def follow(self) -> None:
        """Jump to the newest output and keep following it."""
        self.anchor()
        self.scroll_end(animate=False)
        self._show_follow_state()

    def action_follow(self) -> None:
        self.follow()

    # -- cells ------------------------------------------------------------------------
    def cell(self, cell_id: str) -> CellView | None:
        return self.cells.get(cell_id)

    def add_cell(self, cell_id: str, *, history: bool = False, **kwargs) -> CellView:
        """A new cell at the end; ``history`` cells (from before we attached) go first."""
        kwargs.setdefault("max_lines", self.max_lines)
        kwargs.setdefault("show_times", self.show_times)
        kwargs.setdefault("images", self.images)
        cell = CellView(cell_id, **kwargs)
        if not history:
            self.cells[cell_id] = cell
            self.mount(cell)
            return cell
        cell.add_class("-history")
        earlier = [c for c in self.cells.values() if c.has_class("-history")]
        self.mount(cell, after=earlier[-1] if earlier else self._notice)
        # Keep the dict in screen order: history, then the live cells.
        later = {k: v for k, v in self.cells.items() if not v.has_class("-history")}
        self.cells = {**{c.cell_id: c for c in earlier}, cell_id: cell, **later}
        return cell

    def rekey(self, old_id: str, new_id: str) -> CellView | None:
        """Give a cell its real id (a queued own cell once the kernel starts it)."""
        cell = self.cells.pop(old_id, None)
        if cell is not None:
            cell.cell_id = new_id
            self.cells[new_id] = cell
        return cell

    def remove_cell(self, cell_id: str) -> None:
        cell = self.cells.pop(cell_id, None)
        if cell is not None:
            cell.remove()

    def running_cells(self) -> list[CellView]:
        return [c for c in self.cells.values() if c.status in ("running", "queued")]

    # -- outputs ----------------------------------------------------------------------
    def append_stream(self, cell_id: str, name: str, text: str) -> None:
        cell = self.cells.get(cell_id)
        if cell is not None:
            self.dropped_lines += cell.append_stream(name, text)

    def add_output(
        self,
        cell_id: str,
        content: RenderableType | ImageData,
        *,
        kind: str = "display",
        prompt: str | None = None,
        display_id: str | None = None,
        raw: RenderableType | None = None,
    ) -> Shown | None:
        """Add a rendering (or a picture) to a cell; ``raw`` is its text/plain alternative."""
        cell = self.cells.get(cell_id)
        if cell is None:
            return None
        output = cell.add_output(
            content, kind=kind, prompt=prompt, display_id=display_id, raw=raw
        )
        if display_id:
            self._displays.setdefault(display_id, []).append(output)
        return output

    def update_display(
        self,
        display_id: str,
        content: RenderableType | ImageData,
        raw: RenderableType | None = None,
    ) -> bool:
        """update_display_data: redraw every live output shown under this id."""
        live = [o for o in self._displays.get(display_id, []) if o.is_attached]
        updated: list[Shown] = []
        for output in live:
            cell = output.parent
            if isinstance(cell, CellView):
                updated.append(cell.replace_output(output, content, raw))
        self._displays[display_id] = updated
        return bool(updated)

    def clear_output(self, cell_id: str, wait: bool = False) -> None:
        cell = self.cells.get(cell_id)
        if cell is not None:
            cell.clear_output(wait)

    def clear_all(self) -> None:
        """Forget every cell (the clear-output key); running cells keep their place."""
        for cell_id, cell in list(self.cells.items()):
            if cell.status in ("running", "queued"):
                cell.clear_output()
                continue
            del self.cells[cell_id]
            cell.remove()
        self._displays.clear()
        self.dropped_lines = 0
        self._notice.display = False

    # -- scrollback ---------------------------------------------------------------------
    def enforce_limit(self) -> None:
        """Drop the oldest finished cells while the stream holds too many lines."""
        total = sum(cell.line_count for cell in self.cells.values())
        for cell_id in list(self.cells):
            if total <= self.max_lines or len(self.cells) <= 1:
                break
            cell = self.cells[cell_id]
            if cell.status in ("running", "queued"):
                continue
            total -= cell.line_count
            self.dropped_lines += cell.line_count
            self.remove_cell(cell_id)
        self._enforce_image_budget()
        if self.dropped_lines:
            self._notice.update(
                f"… {self.dropped_lines:,} earlier lines dropped "
                f"(scrollback keeps {self.max_lines:,})"
            )
            self._notice.display = True

    def _enforce_image_budget(self) -> None:
        """Past the budget, the oldest pictures become labels and free their pixels."""
        pictures = [
            (cell, output)
            for cell in self.cells.values()
            for output in cell.outputs()
            if isinstance(output, ImageOutput)
        ]
        total = sum(output.image.memory for _, output in pictures)
        for cell, output in pictures[:-1]:  # the newest picture always stays
            if total <= self.image_budget:
                break
            total -= output.image.memory
            budget_mb = self.image_budget // (1024 * 1024)
            label = Text(
                f"{output.image.label} dropped from memory "
                f"(pictures in the scrollback keep {budget_mb} MB)",
                style="italic",
            )
            label_output = cell.replace_output(output, label)
            if output.display_id in self._displays:
                shown = self._displays[output.display_id]
                self._displays[output.display_id] = [
                    label_output if o is output else o for o in shown
                ]

    @property
    def plain(self) -> str:
        """Everything shown, as plain text (tests read this)."""
        parts: list[str] = []
        if self.dropped_lines:
            parts.append(f"… {self.dropped_lines:,} earlier lines dropped")
        parts.extend(cell.plain for cell in self.cells.values())
        return "\n".join(parts)
