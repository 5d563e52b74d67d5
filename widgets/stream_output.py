"""StreamOutput: stdout/stderr text of one cell, drawn line by line.

A line-API widget: text is decoded (ANSI) and wrapped once, when it arrives,
and only the lines on screen are drawn, so a print of 200 000 lines costs
one decode of the lines that are kept, not a re-render per refresh. It keeps
at most ``max_lines`` lines and counts what it dropped.
"""

from __future__ import annotations

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget


def _last_segment(raw: str) -> str:
    """What a terminal shows for a line with carriage returns: the last overwrite."""
    if "\r" not in raw:
        return raw
    for segment in reversed(raw.split("\r")):
        if segment:
            return segment
    return ""


class StreamOutput(Widget):
    """The text one stream (stdout or stderr) wrote during one cell."""

    DEFAULT_CSS = """
    StreamOutput {
        height: auto;
    }
    """

    def __init__(self, stream: str = "stdout", *, max_lines: int = 10_000) -> None:
        super().__init__(classes=f"-{stream}")
        self.stream = stream
        self.max_lines = max(1, max_lines)
        self.dropped = 0
        self._lines: list[Text] = []
        self._partial = ""
        self._decoder = AnsiDecoder()
        self._width = 0
        self._strips: list[Strip] = []
        self._counts: list[int] = []
        self._partial_strips: list[Strip] = []

    # -- content --------------------------------------------------------------
    @property
    def line_count(self) -> int:
        """Logical lines held, the unfinished last line included."""
        return len(self._lines) + (1 if self._partial else 0)

    @property
    def plain(self) -> str:
        """The kept text, without styles."""
        lines = [line.plain for line in self._lines]
        if self._partial:
            lines.append(_last_segment(self._partial))
        return "\n".join(lines)

    def append(self, text: str) -> int:
        """Add text as the stream wrote it; returns how many lines were dropped now."""
        if not text:
            return 0
        text = self._partial + text
        raw_lines = text.split("\n")
        partial = raw_lines.pop()
        # An unfinished line of progress-bar overwrites need only its last state.
        self._partial = _last_segment(partial) + ("\r" if partial.endswith("\r") else "")
        dropped_before = self.dropped
        excess = len(raw_lines) - self.max_lines
        if excess > 0:
            self.dropped += excess
            del raw_lines[:excess]
        new_lines = [self._decode(_last_segment(raw.rstrip("\r"))) for raw in raw_lines]
        self._lines.extend(new_lines)
        if self._width:
            console = self.app.console
            for line in new_lines:
                strips = self._wrap(line, self._width, console)
                self._strips.extend(strips)
                self._counts.append(len(strips))
            self._partial_strips = self._wrap_partial(self._width)
        self._trim()
        self.refresh(layout=True)
        return self.dropped - dropped_before

    def clear(self) -> None:
        self._lines.clear()
        self._partial = ""
        self._strips.clear()
        self._counts.clear()
        self._partial_strips = []
        self._decoder = AnsiDecoder()
        self.refresh(layout=True)

    def trim_to(self, keep: int) -> int:
        """Drop the oldest lines until at most ``keep`` remain; returns how many went."""
        cut = len(self._lines) - max(0, keep)
        if cut <= 0:
            return 0
        del self._lines[:cut]
        if self._width:
            visual = sum(self._counts[:cut])
            del self._strips[:visual]
            del self._counts[:cut]
        self.dropped += cut
        self.refresh(layout=True)
        return cut

    def _trim(self) -> None:
        slack = max(100, self.max_lines // 10)
        if len(self._lines) > self.max_lines + slack:
            self.trim_to(self.max_lines)

    def _decode(self, raw: str) -> Text:
        text = self._decoder.decode_line(raw) if "\x1b" in raw or self._decoder.style else Text(raw)
        if "\t" in raw:
            text.expand_tabs(8)
        return text

    # -- drawing --------------------------------------------------------------
    def _wrap(self, text: Text, width: int, console) -> list[Strip]:
        if not text:
            return [Strip([], 0)]
        if text.cell_len <= width:
            return [Strip(list(text.render(console)), text.cell_len)]
        lines = text.wrap(console, width, overflow="fold", no_wrap=False)
        return [Strip(list(line.render(console)), line.cell_len) for line in lines]

    def _wrap_partial(self, width: int) -> list[Strip]:
        shown = _last_segment(self._partial)
        if not shown:
            return []
        decoder = AnsiDecoder()
        decoder.style = self._decoder.style
        text = decoder.decode_line(shown) if "\x1b" in shown else Text(shown)
        return self._wrap(text, width, self.app.console)

    def _ensure_width(self, width: int) -> None:
        if width == self._width or width <= 0:
            return
        self._width = width
        console = self.app.console
        self._strips = []
        self._counts = []
        for line in self._lines:
            strips = self._wrap(line, width, console)
            self._strips.extend(strips)
            self._counts.append(len(strips))
        self._partial_strips = self._wrap_partial(width)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._ensure_width(width)
        return len(self._strips) + len(self._partial_strips)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        self._ensure_width(width)
        if y < len(self._strips):
            strip = self._strips[y]
        elif y - len(self._strips) < len(self._partial_strips):
            strip = self._partial_strips[y - len(self._strips)]
        else:
            strip = Strip([], 0)
        base: Style = self.rich_style
        return strip.crop_extend(0, width, base).apply_style(base)
