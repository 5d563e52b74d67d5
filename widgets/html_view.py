"""HTML output as readable terminal text: headings, paragraphs, lists, links, code, tables.

Not a browser: it keeps what carries meaning in a terminal (structure,
emphasis, link targets, preformatted text, tables as Rich tables) and drops
the rest (scripts, styles, layout). Styles are attributes such as bold or
italic, never colours; the theme decides those.
"""

from __future__ import annotations

import re

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text

from .html_table import render_table
from .html_tree import Element, parse_html

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "math"})
_BLOCKS = frozenset({"p", "div", "section", "article", "header", "footer", "main", "nav",
                     "blockquote", "figure", "figcaption", "details", "summary", "form",
                     "fieldset", "address", "dl", "dt", "dd", "body", "html", "center"})
_INLINE_STYLE = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
                 "s": "strike", "del": "strike", "strike": "strike", "code": "bold",
                 "kbd": "bold", "samp": "bold", "tt": "bold", "mark": "reverse"}
_HEADING_STYLE = {"h1": "bold underline", "h2": "bold", "h3": "bold", "h4": "bold italic",
                  "h5": "italic", "h6": "italic"}
_SHAPE = re.compile(r"^\d+ rows × \d+ columns$")
RULE_WIDTH = 40


class _Writer:
    """Collects blocks: Text paragraphs and tables, in order."""

    def __init__(self) -> None:
        self.blocks: list[RenderableType] = []
        self.line = Text()

    def inline(self, text: str, style: str | Style = "") -> None:
        if not text:
            return
        if self.line.plain.endswith((" ", "\n")) or not self.line.plain:
            text = text.lstrip(" ")
        self.line.append(text, style=style or None)

    def newline(self) -> None:
        self.line.rstrip()
        self.line.append("\n")

    def end_block(self) -> None:
        self.line.rstrip()
        if self.line.plain.strip():
            self.blocks.append(self.line)
        self.line = Text()

    def add(self, renderable: RenderableType) -> None:
        self.end_block()
        self.blocks.append(renderable)


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _walk(element: Element, out: _Writer, style: str, list_depth: int) -> None:
    for index, child in enumerate(element.children):
        if isinstance(child, str):
            out.inline(_collapse(child), style)
            continue
        _element(child, out, style, list_depth, element.children[index + 1 :])


def _next_text(siblings: list[Element | str]) -> str:
    for sibling in siblings:
        text = sibling if isinstance(sibling, str) else sibling.text()
        if text.strip():
            return text.strip()
    return ""


def _element(
    el: Element, out: _Writer, style: str, depth: int, siblings: list[Element | str]
) -> None:
    tag = el.tag
    if tag in _SKIP:
        return
    if tag == "table":
        out.add(render_table(el, shape_known=bool(_SHAPE.match(_next_text(siblings)))))
    elif tag in _HEADING_STYLE:
        out.end_block()
        _walk(el, out, _HEADING_STYLE[tag], depth)
        out.end_block()
    elif tag == "pre":
        out.end_block()
        out.blocks.append(Text(el.text().strip("\n"), style="bold"))
    elif tag in ("ul", "ol"):
        out.end_block()
        _list(el, out, style, depth + 1, ordered=tag == "ol")
        out.end_block()
    elif tag == "br":
        out.newline()
    elif tag == "hr":
        out.add(Text("─" * RULE_WIDTH))
    elif tag == "img":
        out.inline(f"[image: {el.attrs.get('alt') or el.attrs.get('src', '')[:60]}]", "italic")
    elif tag == "a":
        _link(el, out, style, depth)
    elif tag in _BLOCKS or tag == "li":
        out.end_block()
        _walk(el, out, style, depth)
        out.end_block()
    else:
        inner = _INLINE_STYLE.get(tag, "")
        _walk(el, out, f"{style} {inner}".strip(), depth)


def _list(el: Element, out: _Writer, style: str, depth: int, *, ordered: bool) -> None:
    number = 0
    for child in el.children:
        if not isinstance(child, Element) or child.tag != "li":
            continue
        number += 1
        out.end_block()
        out.line.append("  " * (depth - 1) + (f"{number}. " if ordered else "• "))
        for grand in child.children:
            if isinstance(grand, str):
                out.inline(_collapse(grand), style)
            elif grand.tag in ("ul", "ol"):
                out.end_block()
                _list(grand, out, style, depth + 1, ordered=grand.tag == "ol")
            else:
                _element(grand, out, style, depth, [])
        out.end_block()


def _link(el: Element, out: _Writer, style: str, depth: int) -> None:
    href = el.attrs.get("href", "")
    label = " ".join(el.text().split())
    if not href:
        _walk(el, out, style, depth)
        return
    base = Style.parse(style) if style else Style()
    out.inline(label, base + Style(underline=True, link=href))
    if href and href != label and not href.startswith(("#", "javascript:")):
        out.inline(f" ({href})", style)


def html_renderable(html: str) -> RenderableType:
    """Readable terminal text (and Rich tables) for an HTML fragment or page."""
    out = _Writer()
    _walk(parse_html(html), out, "", 0)
    out.end_block()
    if not out.blocks:
        return Text("")
    return out.blocks[0] if len(out.blocks) == 1 else Group(*out.blocks)
