"""StreamOutput: stdout/stderr text of one cell, drawn line by line.

A line-API widget built for floods: a line is kept as a plain ``str`` unless
it carries ANSI codes, its height at the current width is worked out from
its length, and it is only turned into styled strips when it scrolls into
view. So a print of 200 000 lines costs a split and a length per kept line,
not a render. It keeps at most ``max_lines`` lines and counts what it
dropped. Long lines fold at the width, as in a terminal.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

from rich.ansi import AnsiDecoder
from rich.cells import get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from .mimebundle import osc_ended_by_st

STRIP_CACHE_LINES = 2000

Line = str | Text


def _last_segment(raw: str) -> str:
    """What a terminal shows for a line with carriage returns: the last overwrite."""
    if "\r" not in raw:
        return raw
    for segment in reversed(raw.split("\r")):
        if segment:
            return segment
    return ""


def _plain(line: Line) -> str:
    return line if isinstance(line, str) else line.plain


def _cuts(plain: str, width: int) -> list[int]:
    """Offsets where a line folds at ``width`` cells (wide characters never split)."""
    if plain.isascii():
        return list(range(width, len(plain), width))
    cuts = []
    used = 0
    for index, char in enumerate(plain):
        cells = get_character_cell_size(char)
        if used + cells > width and used:
            cuts.append(index)
            used = 0
        used += cells
    return cuts


def _rows(line: Line, width: int) -> int:
    """Rows a line takes when folded at ``width`` cells."""
    plain = _plain(line)
    if plain.isascii():
        return max(1, -(-len(plain) // width))
    return len(_cuts(plain, width)) + 1


def _fold(line: Line, width: int, console) -> list[Strip]:
    """The line as strips of at most ``width`` cells."""
    if isinstance(line, str) and line.isascii():
        if not line:
            return [Strip([], 0)]
        return [
            Strip([Segment(line[i : i + width])], len(line[i : i + width]))
            for i in range(0, len(line), width)
        ]
    text = Text(line) if isinstance(line, str) else line
    if not text.plain:
        return [Strip([], 0)]
    parts = text.divide(_cuts(text.plain, width))
    return [Strip(list(part.render(console)), part.cell_len) for part in parts]


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
        self._lines: list[Line] = []
        self._partial = ""
        self._decoder = AnsiDecoder()
        self._width = 0
        self._starts: list[int] = []  # absolute first row of each line
        self._base = 0  # absolute row of the first kept line
        self._end = 0  # absolute row after the last complete line
        self._cache: OrderedDict[int, list[Strip]] = OrderedDict()

    # -- content --------------------------------------------------------------
    @property
    def line_count(self) -> int:
        """Logical lines held, the unfinished last line included."""
        return len(self._lines) + (1 if self._partial_shown else 0)

    @property
    def _partial_shown(self) -> str:
        return _last_segment(self._partial)

    @property
    def plain(self) -> str:
        """The kept text, without styles."""
        lines = [_plain(line) for line in self._lines]
        if self._partial_shown:
            lines.append(self._partial_shown)
        return "\n".join(lines)

    def append(self, text: str) -> int:
        """Add text as the stream wrote it; returns how many lines were dropped now."""
        if not text:
            return 0
        raw_lines = (self._partial + text).split("\n")
        partial = raw_lines.pop()
        # An unfinished line of progress-bar overwrites needs only its last state.
        self._partial = _last_segment(partial) + ("\r" if partial.endswith("\r") else "")
        dropped_before = self.dropped
        excess = len(raw_lines) - self.max_lines
        if excess > 0:
            self.dropped += excess
            del raw_lines[:excess]
        new_lines = [self._decode(_last_segment(raw.rstrip("\r"))) for raw in raw_lines]
        start = len(self._lines)
        self._lines.extend(new_lines)
        if self._width:
            self._index_from(start)
        self._trim()
        self.refresh(layout=True)
        return self.dropped - dropped_before

    def clear(self) -> None:
        self._lines.clear()
        self._partial = ""
        self._decoder = AnsiDecoder()
        self._starts.clear()
        self._base = self._end = 0
        self._cache.clear()
        self.refresh(layout=True)

    def trim_to(self, keep: int) -> int:
        """Drop the oldest lines until at most ``keep`` remain; returns how many went."""
        cut = len(self._lines) - max(0, keep)
        if cut <= 0:
            return 0
        del self._lines[:cut]
        if self._width:
            del self._starts[:cut]
            self._base = self._starts[0] if self._starts else self._end
            self._cache.clear()
        self.dropped += cut
        self.refresh(layout=True)
        return cut

    def _trim(self) -> None:
        slack = max(100, self.max_lines // 10)
        if len(self._lines) > self.max_lines + slack:
            self.trim_to(self.max_lines)

    def _decode(self, raw: str) -> Line:
        if "\x1b" in raw or self._decoder.style:
            text = self._decoder.decode_line(osc_ended_by_st(raw))
            if "\t" in raw:
                text.expand_tabs(8)
            return text
        return raw.expandtabs(8) if "\t" in raw else raw

    def _partial_line(self) -> Line | None:
        shown = self._partial_shown
        if not shown:
            return None
        if "\x1b" in shown or self._decoder.style:
            decoder = AnsiDecoder()
            decoder.style = self._decoder.style
            return decoder.decode_line(osc_ended_by_st(shown))
        return shown.expandtabs(8)

    # -- geometry -------------------------------------------------------------
    def _index_from(self, start: int) -> None:
        """Row starts of lines[start:] at the current width."""
        width = self._width
        row = self._end
        starts = self._starts
        for line in self._lines[start:]:
            starts.append(row)
            row += _rows(line, width)
        self._end = row

    def _ensure_width(self, width: int) -> None:
        if width == self._width or width <= 0:
            return
        self._width = width
        self._starts = []
        self._base = self._end = 0
        self._cache.clear()
        self._index_from(0)

    def _partial_rows(self) -> int:
        line = self._partial_line()
        return 0 if line is None else _rows(line, self._width)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._ensure_width(width)
        return self._end - self._base + self._partial_rows()

    # -- drawing --------------------------------------------------------------
    def _strips_of(self, index: int) -> list[Strip]:
        strips = self._cache.get(index)
        if strips is None:
            strips = _fold(self._lines[index], self._width, self.app.console)
            self._cache[index] = strips
            if len(self._cache) > STRIP_CACHE_LINES:
                self._cache.popitem(last=False)
        return strips

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        self._ensure_width(width)
        row = self._base + y
        strip = Strip([], 0)
        if row < self._end and self._lines:
            index = bisect_right(self._starts, row) - 1
            strips = self._strips_of(index)
            offset = row - self._starts[index]
            if offset < len(strips):
                strip = strips[offset]
        else:
            partial = self._partial_line()
            if partial is not None:
                strips = _fold(partial, width, self.app.console)
                offset = row - self._end
                if 0 <= offset < len(strips):
                    strip = strips[offset]
        base: Style = self.rich_style
        return strip.crop_extend(0, width, base).apply_style(base)
