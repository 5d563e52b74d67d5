"""RichOutput: one result, display or error of a cell.

When the bundle was drawn from HTML, LaTeX or markdown and also carried
text/plain, that plain form is kept as ``raw``: focused (click, or F7 from
the editor), ``t`` toggles between the two.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from .mimebundle import plain_of


class RichOutput(Static):
    """A rendered output; results carry an ``Out[n]:`` prompt, displays may carry an id."""

    COMPONENT_CLASSES = {"rich-output--prompt"}

    BINDINGS = [
        Binding("t", "toggle_raw", "Rendered/plain", show=True),
    ]

    DEFAULT_CSS = """
    RichOutput {
        height: auto;
    }
    """

    def __init__(
        self,
        renderable: RenderableType,
        *,
        kind: str = "display",
        prompt: str | None = None,
        display_id: str | None = None,
        raw: RenderableType | None = None,
    ) -> None:
        super().__init__(classes=f"-{kind}")
        self.kind = kind
        self.prompt = prompt
        self.display_id = display_id
        self.body: RenderableType = renderable
        self.raw: RenderableType | None = raw
        self.showing_raw = False
        self.can_focus = raw is not None

    @property
    def shown(self) -> RenderableType:
        """What is on screen: the rendering, or the raw text/plain when toggled."""
        return self.raw if self.showing_raw and self.raw is not None else self.body

    @property
    def plain(self) -> str:
        text = plain_of(self.shown)
        return f"{self.prompt} {text}" if self.prompt else text

    @property
    def line_count(self) -> int:
        return self.plain.count("\n") + 1

    def on_mount(self) -> None:
        self._draw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self._draw()

    def set_body(self, renderable: RenderableType, raw: RenderableType | None = None) -> None:
        """Replace the content (update_display_data)."""
        self.body = renderable
        self.raw = raw
        self.can_focus = raw is not None
        if raw is None:
            self.showing_raw = False
        self._draw()

    def action_toggle_raw(self) -> None:
        """Switch between the rendering and the bundle's text/plain."""
        if self.raw is None:
            return
        self.showing_raw = not self.showing_raw
        self.set_class(self.showing_raw, "-raw")
        self._draw()

    def _draw(self) -> None:
        body = self.shown
        if not self.prompt:
            self.update(body)
            return
        prompt = Text(
            self.prompt, style=self.get_component_rich_style("rich-output--prompt", partial=True)
        )
        if isinstance(body, Text) and "\n" not in body.plain:
            self.update(Text.assemble(prompt, " ", body))
        else:
            self.update(Group(prompt, body))
