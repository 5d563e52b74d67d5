"""Turn Jupyter MIME bundles and tracebacks into Rich renderables.

Pure functions, no widgets: the output widgets call these so what a bundle
looks like is decided in one place.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

RECOVERY_MIME = "application/vnd.ipytui.recovery+json"

# An OSC sequence ended by BEL (window titles, hyperlinks from `ls --hyperlink`…): Rich
# parses only the ESC-backslash ending and would show the rest as text.
_OSC_BEL = re.compile(r"\x1b\]([^\x07\x1b]*)\x07")

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp")
# HTML beyond this is not parsed on the UI's loop: its text/plain (or a label) shows instead.
MAX_HTML_CHARS = 2_000_000
# Width at which renderings without a plain form (tables) are measured for search and tests.
PLAIN_WIDTH = 120


def osc_ended_by_st(text: str) -> str:
    """OSC sequences ended by BEL rewritten to end with ESC-backslash, which Rich parses."""
    return _OSC_BEL.sub("\x1b]\\1\x1b\\\\", text) if "\x07" in text else text


def ansi_text(text: str) -> Text:
    """Text with ANSI colour codes honoured (plain fast path when there are none)."""
    result = Text.from_ansi(osc_ended_by_st(text)) if "\x1b" in text else Text(text)
    result.expand_tabs(8)
    return result


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def _size_label(value: Any) -> str:
    raw = _as_text(value)
    try:
        size = len(base64.b64decode(raw, validate=False))
    except Exception:
        size = len(raw.encode())
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} B"


def placeholder(mime: str, value: Any, metadata: dict[str, Any]) -> Text:
    """A one-line label for output a terminal cannot draw."""
    meta = metadata.get(mime) if isinstance(metadata.get(mime), dict) else {}
    dims = ""
    if meta.get("width") and meta.get("height"):
        dims = f" {meta['width']}x{meta['height']}"
    return Text(f"[{mime}{dims}, {_size_label(value)}]", style="italic")


def render_bundle(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> RenderableType:
    """The best terminal rendering of a MIME bundle, images aside.

    Markdown is rendered (its ``$…$`` maths as unicode), JSON pretty-printed,
    HTML turned into readable text and tables, LaTeX into unicode, ANSI text
    coloured; an image gets a labelled placeholder followed by the
    text/plain form if any (the output widgets draw images themselves).
    """
    metadata = metadata or {}
    if "text/markdown" in data:
        from rich.markdown import Markdown

        from .latex_text import markdown_math_to_unicode

        return Markdown(markdown_math_to_unicode(_as_text(data["text/markdown"])))
    if "application/json" in data:
        from rich.json import JSON

        return JSON.from_data(data["application/json"], indent=2)
    labels: list[RenderableType] = []
    for mime in _IMAGE_TYPES:
        if mime in data:
            labels.append(placeholder(mime, data[mime], metadata))
            break
    html = _as_text(data["text/html"]) if "text/html" in data and not labels else ""
    if html and (len(html) <= MAX_HTML_CHARS or "text/plain" not in data):
        if len(html) > MAX_HTML_CHARS:
            return placeholder("text/html", html, metadata)
        from .html_view import html_renderable

        return html_renderable(html)
    if "text/latex" in data and not labels:
        from .latex_text import latex_to_unicode

        return Text(latex_to_unicode(_as_text(data["text/latex"])))
    if "text/plain" in data:
        labels.append(ansi_text(_as_text(data["text/plain"])))
    if not labels:
        shown = [m for m in data if m != RECOVERY_MIME]
        if not shown:
            return Text("")
        return placeholder(shown[0], data[shown[0]], metadata)
    return labels[0] if len(labels) == 1 else Group(*labels)


def raw_plain(data: dict[str, Any]) -> Text | None:
    """The bundle's text/plain when ``render_bundle`` drew something else (the toggle's target)."""
    html_drawn = "text/html" in data and len(_as_text(data["text/html"])) <= MAX_HTML_CHARS
    drawn_from_other = html_drawn or any(m in data for m in ("text/markdown", "text/latex"))
    if "text/plain" in data and drawn_from_other and "application/json" not in data:
        return ansi_text(_as_text(data["text/plain"]))
    return None


def render_traceback(content: dict[str, Any]) -> Text:
    """An error as its traceback (ANSI honoured), or ``ename: evalue`` without one."""
    lines = content.get("traceback") or []
    if lines:
        return ansi_text("\n".join(str(line) for line in lines))
    ename = content.get("ename", "Error")
    evalue = content.get("evalue", "")
    return Text(f"{ename}: {evalue}" if evalue else ename)


def plain_of(renderable: RenderableType) -> str:
    """The plain text of a renderable made by this module (for tests and search)."""
    if isinstance(renderable, Text):
        return renderable.plain
    if isinstance(renderable, Group):
        return "\n".join(plain_of(r) for r in renderable.renderables)
    markup = getattr(renderable, "markup", None)
    if isinstance(markup, str):
        return markup
    text = getattr(renderable, "text", None)
    if isinstance(text, Text):
        return text.plain
    from rich.console import Console

    console = Console(width=PLAIN_WIDTH, color_system=None, file=io.StringIO(), legacy_windows=False)
    with console.capture() as capture:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in capture.get().rstrip("\n").split("\n"))
