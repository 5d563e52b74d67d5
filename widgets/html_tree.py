"""A forgiving HTML parse into a small element tree (stdlib ``html.parser``).

Output HTML is often a fragment and sometimes sloppy (unclosed ``<p>`` or
``<li>``, stray end tags); the tree builder closes what a browser would
close and ignores what it cannot place, so any input gives a tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "param", "source", "track", "wbr"})
# Opening one of these closes an open element of the same family, as browsers do.
_IMPLIED_END = {
    "p": {"p"},
    "li": {"li"},
    "tr": {"tr", "td", "th"},
    "td": {"td", "th"},
    "th": {"td", "th"},
    "thead": {"thead", "tbody", "tr", "td", "th"},
    "tbody": {"thead", "tbody", "tr", "td", "th"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
}
# Opening a block closes an open paragraph.
_CLOSES_P = frozenset({"div", "table", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6",
                       "blockquote", "dl", "hr"})
# Nesting beyond this is flattened: a hostile document cannot exhaust the stack.
MAX_DEPTH = 200


@dataclass
class Element:
    """One element: its tag, attributes and children (elements and text)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        """All text inside, as written."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str) -> list[Element]:
        """Every descendant with this tag, in document order (not inside a match)."""
        found: list[Element] = []
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag:
                    found.append(child)
                else:
                    found.extend(child.find_all(tag))
        return found


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root")
        self.stack: list[Element] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        closes = _IMPLIED_END.get(tag, set()) | ({"p"} if tag in _CLOSES_P else set())
        while len(self.stack) > 1 and self.stack[-1].tag in closes:
            self.stack.pop()
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID and len(self.stack) < MAX_DEPTH:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(html: str) -> Element:
    """The document as a tree under a ``root`` element; never raises on bad markup."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
