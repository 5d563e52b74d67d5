"""Python syntax highlighting for a TextArea without tree-sitter.

Pygments tokens become TextArea highlight names; their styles come from the
app theme's variables (the same mapping Textual uses for highlighted code),
so the editor and the highlighted code in the output stream agree and follow
the theme. Nothing here names a colour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from functools import cache
from typing import TYPE_CHECKING, Any

from pygments.token import Token
from rich.style import Style as RichStyle
from textual.color import Color
from textual.style import Style

if TYPE_CHECKING:
    from pygments.lexer import Lexer
    from pygments.token import _TokenType
    from textual.content import Content

Highlights = dict[int, list[tuple[int, int | None, str]]]


@cache
def _theme_styles() -> dict[_TokenType, str]:
    """Textual's highlight styles by token type, looked up on first use:
    ``textual.highlight`` brings in pygments' lexer machinery (~15 ms of
    imports), which start-up does not need for an empty editor."""
    from textual.highlight import HighlightTheme

    return HighlightTheme.STYLES


@cache
def python_lexer() -> Lexer:
    """The shared Python lexer, built on first use: it compiles ~100 regexes
    (tens of ms), which start-up does not need for an empty editor."""
    from pygments.lexers.python import PythonLexer

    return PythonLexer(stripnl=False, ensurenl=False)


def highlight_python(code: str) -> Content:
    """Code as highlighted Content, the way Textual highlights Python (output
    cells, peers' drafts); trailing newlines dropped."""
    from textual.highlight import highlight

    return highlight(code.rstrip("\n"), language="python")


@cache
def _style_name(token: _TokenType) -> str | None:
    """The most specific token type the highlight theme has a style for."""
    styles = _theme_styles()
    while token is not Token:
        if token in styles:
            return str(token)
        token = token.parent
    return None


def python_highlights(text: str) -> Highlights:
    """Highlights for a TextArea: row -> [(start byte, end byte, name)]."""
    highlights: Highlights = defaultdict(list)
    if not text.strip():
        return highlights  # whitespace is never highlighted
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    for index, token, value in python_lexer().get_tokens_unprocessed(text):
        name = _style_name(token)
        if name is None or not value.strip():
            continue
        offset = index
        for piece in value.split("\n"):
            if piece.strip():
                row = bisect_right(starts, offset) - 1
                line = lines[row]
                col = offset - starts[row]
                begin = len(line[:col].encode("utf-8"))
                highlights[row].append((begin, begin + len(piece.encode("utf-8")), name))
            offset += len(piece) + 1
    return highlights


def syntax_styles(variables: dict[str, str], background: Color) -> dict[str, RichStyle]:
    """Rich styles for every highlight name, resolved against theme variables."""
    styles: dict[str, RichStyle] = {}
    for token, definition in _theme_styles().items():
        if not definition:
            continue
        styles[str(token)] = _resolve(definition, variables, background)
    return styles


def _resolve(definition: str, variables: dict[str, Any], background: Color) -> RichStyle:
    style = Style.parse(definition, variables)
    color = None
    foreground = style.foreground
    if foreground is not None:
        if foreground.auto:
            foreground = background.get_contrast_text(foreground.a)
        color = background.blend(foreground.with_alpha(1.0), foreground.a).rich_color
    bgcolor = None
    if style.background is not None and style.background.a > 0:
        bgcolor = background.blend(style.background.with_alpha(1.0), style.background.a).rich_color
    return RichStyle(
        color=color,
        bgcolor=bgcolor,
        bold=style.bold,
        italic=style.italic,
        underline=style.underline,
    )
