"""LaTeX as readable unicode (pylatexenc), or as its source when that cannot be had.

``α² + ½``-style text is what a terminal can show of maths; when pylatexenc
is missing or gives up, the source stays visible: LaTeX is never dropped.
"""

from __future__ import annotations

import re

# $$…$$ first, then $…$ not preceded by a backslash or a digit-dollar price ("$5 and $6").
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def latex_to_unicode(source: str) -> str:
    """Unicode text for LaTeX source; the source itself when it cannot be converted."""
    try:
        from pylatexenc.latex2text import LatexNodes2Text
        from pylatexenc.latexwalker import LatexWalker
    except ImportError:
        return source
    try:
        # Strict parsing: malformed input raises (and keeps its source) instead of half-converting.
        nodes, _, _ = LatexWalker(source, tolerant_parsing=False).get_latex_nodes()
        text = LatexNodes2Text(math_mode="text").nodelist_to_text(nodes)
    except Exception:  # pylatexenc raises its own kinds on malformed input
        return source
    return text.strip() or source


def markdown_math_to_unicode(markdown: str) -> str:
    """Markdown with ``$…$`` and ``$$…$$`` maths turned to unicode, code spans left alone."""
    if "$" not in markdown:
        return markdown
    parts = _CODE.split(markdown)
    for index in range(0, len(parts), 2):  # even parts are outside code
        part = _DISPLAY_MATH.sub(lambda m: latex_to_unicode(m.group(1)), parts[index])
        parts[index] = _INLINE_MATH.sub(lambda m: latex_to_unicode(m.group(1)), part)
    return "".join(parts)
