"""CellView: one cell of the shared output stream.

A header (``In [n]``, who ran it, state and elapsed time), the highlighted
code, then the outputs in arrival order. Own and others' cells differ by the
``-own`` / ``-peer`` class, so the stylesheet decides the colours.
"""

from __future__ import annotations

import time

from rich.console import RenderableType
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from .image_data import ImageData
from .image_output import ImageOutput
from .peer_model import peer_colour
from .python_highlight import highlight_python
from .rich_output import RichOutput
from .stream_output import StreamOutput

# What a cell shows below its code, in arrival order.
Output = StreamOutput | RichOutput | ImageOutput

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_STATUS_MARK = {"ok": "✓", "error": "✗", "aborted": "⊘", "died": "☠"}


def format_elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class CellView(Vertical):
    """One cell: header, code, outputs."""

    COMPONENT_CLASSES = {
        "cell-view--prompt",
        "cell-view--who",
        "cell-view--state",
    }

    DEFAULT_CSS = """
    CellView {
        height: auto;
    }
    CellView > .cell-header, CellView > .cell-code {
        height: auto;
    }
    """

    def __init__(
        self,
        cell_id: str,
        *,
        code: str = "",
        who: str = "",
        own: bool = False,
        session: str = "",
        execution_count: int | None = None,
        status: str = "queued",
        max_lines: int = 10_000,
        show_times: bool = True,
        images: str = "auto",
    ) -> None:
        # Another peer's cell takes that peer's colour slot (-peer-N), as in the peers panel.
        classes = "-own" if own else f"-peer -peer-{peer_colour(session)}" if session else "-peer"
        super().__init__(classes=classes)
        self.images = images
        self.cell_id = cell_id
        self.code = code
        self.who = who
        self.own = own
        self.session = session
        self.execution_count = execution_count
        self.status = status
        self.max_lines = max_lines
        self.show_times = show_times
        self.started = time.monotonic()
        self.finished: float | None = None
        self.frame = 0
        self._clear_pending = False
        self._outputs: list[Output] = []
        self._composed = False
        self._header = Static(classes="cell-header")
        self._code = Static(classes="cell-code")
        self._code.display = bool(code)

    def compose(self):
        # Outputs that arrived before the cell was composed come after header and code.
        self._composed = True
        yield self._header
        yield self._code
        yield from self._outputs

    def on_mount(self) -> None:
        self._draw_code()
        self.draw_header()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self.draw_header()

    # -- header -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status == "running"

    def header_text(self) -> Text:
        count = " " if self.execution_count is None else str(self.execution_count)
        def style(name: str):
            return self.get_component_rich_style(name, partial=True)

        if self.status == "event":  # a kernel event told to every client: no In [n]
            return Text.assemble(("kernel event", style("cell-view--prompt")))
        text = Text.assemble((f"In [{count}]", style("cell-view--prompt")))
        if self.who:
            who = f"{self.who} (you)" if self.own else self.who
            text.append(" · ")
            text.append(who, style("cell-view--who"))
        state = self._state_label()
        if state:
            text.append(" · ")
            text.append(state, style("cell-view--state"))
        return text

    def _state_label(self) -> str:
        if self.status == "queued":
            return "queued"
        if self.status == "running":
            spin = SPINNER[self.frame % len(SPINNER)] if self.show_times else "…"
            elapsed = f" {format_elapsed(time.monotonic() - self.started)}" if self.show_times else ""
            return f"{spin} running{elapsed}"
        mark = _STATUS_MARK.get(self.status, "")
        if self.show_times and self.finished is not None:
            return f"{mark} {format_elapsed(self.finished - self.started)}".strip()
        return mark

    def draw_header(self) -> None:
        self._header.update(self.header_text())

    def tick(self) -> None:
        """Advance the spinner (the stream calls this while the cell runs)."""
        self.frame += 1
        self.draw_header()

    def set_execution_count(self, count: int | None) -> None:
        self.execution_count = count
        self.draw_header()

    def set_code(self, code: str) -> None:
        self.code = code
        self._code.display = bool(code)
        if self.is_mounted:
            self._draw_code()

    def _draw_code(self) -> None:
        if self.code:
            self._code.update(highlight_python(self.code))

    def set_status(self, status: str) -> None:
        if status == "running" and self.status != "running":
            self.started = time.monotonic()
        if status not in ("queued", "running") and self.finished is None:
            self.finished = time.monotonic()
        self.status = status
        self.set_class(status == "running", "-running")
        self.set_class(status in ("error", "died"), "-failed")
        self.draw_header()

    # -- outputs -----------------------------------------------------------------
    def outputs(self) -> list[Output]:
        return list(self._outputs)

    def _before_output(self) -> None:
        if self._clear_pending:
            self._clear_pending = False
            self._remove_outputs()

    def append_stream(self, name: str, text: str) -> int:
        """Add stream text, merged into the last block when it is the same stream."""
        self._before_output()
        outputs = self.outputs()
        last = outputs[-1] if outputs else None
        if not (isinstance(last, StreamOutput) and last.stream == name):
            last = StreamOutput(name, max_lines=self.max_lines)
            self._add(last)
        return last.append(text)

    def add_output(
        self,
        content: RenderableType | ImageData,
        *,
        kind: str = "display",
        prompt: str | None = None,
        display_id: str | None = None,
        raw: RenderableType | None = None,
    ) -> RichOutput | ImageOutput:
        """A rendered output, or a picture; ``raw`` is the text/plain form a key toggles to."""
        self._before_output()
        output = self._make_output(content, kind, prompt, display_id, raw)
        self._add(output)
        return output

    def _make_output(
        self,
        content: RenderableType | ImageData,
        kind: str,
        prompt: str | None,
        display_id: str | None,
        raw: RenderableType | None,
    ) -> RichOutput | ImageOutput:
        if isinstance(content, ImageData):
            return ImageOutput(
                content, mode=self.images, kind=kind, prompt=prompt, display_id=display_id
            )
        return RichOutput(content, kind=kind, prompt=prompt, display_id=display_id, raw=raw)

    def replace_output(
        self,
        old: RichOutput | ImageOutput,
        content: RenderableType | ImageData,
        raw: RenderableType | None = None,
    ) -> RichOutput | ImageOutput:
        """Show new content where ``old`` is (update_display_data), in place when the kind fits."""
        if isinstance(old, ImageOutput) and isinstance(content, ImageData):
            old.set_image(content)
            return old
        if isinstance(old, RichOutput) and not isinstance(content, ImageData):
            old.set_body(content, raw)
            return old
        new = self._make_output(content, old.kind, old.prompt, old.display_id, raw)
        index = self._outputs.index(old) if old in self._outputs else len(self._outputs)
        self._outputs.insert(index, new)
        if old in self._outputs:
            self._outputs.remove(old)
        if self._composed and old.parent is not None:
            self.mount(new, after=old)
            old.remove()
        return new

    def clear_output(self, wait: bool = False) -> None:
        """clear_output: now, or (wait=True) just before the next output arrives."""
        if wait:
            self._clear_pending = True
        else:
            self._clear_pending = False
            self._remove_outputs()

    def _add(self, output: Output) -> None:
        self._outputs.append(output)
        if self._composed:
            self.mount(output)

    def _remove_outputs(self) -> None:
        outputs, self._outputs = self._outputs, []
        for output in outputs:
            if output.parent is not None:
                output.remove()

    # -- size and text -------------------------------------------------------------
    @property
    def line_count(self) -> int:
        lines = 1 + (self.code.count("\n") + 1 if self.code else 0)
        return lines + sum(o.line_count for o in self.outputs())

    @property
    def plain(self) -> str:
        parts = [self.header_text().plain]
        if self.code:
            parts.append(self.code.rstrip("\n"))
        parts.extend(o.plain for o in self.outputs() if o.plain)
        return "\n".join(parts)
