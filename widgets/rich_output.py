"""RichOutput: one result, display or error of a cell."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.widgets import Static

from .mimebundle import plain_of


class RichOutput(Static):
    """A rendered output; results carry an ``Out[n]:`` prompt, displays may carry an id."""

    COMPONENT_CLASSES = {"rich-output--prompt"}

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
    ) -> None:
        super().__init__(classes=f"-{kind}")
        self.kind = kind
        self.prompt = prompt
        self.display_id = display_id
        self.body: RenderableType = renderable

    @property
    def plain(self) -> str:
        text = plain_of(self.body)
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

    def set_body(self, renderable: RenderableType) -> None:
        """Replace the content (update_display_data)."""
        self.body = renderable
        self._draw()

    def _draw(self) -> None:
        if not self.prompt:
            self.update(self.body)
            return
        prompt = Text(
            self.prompt, style=self.get_component_rich_style("rich-output--prompt", partial=True)
        )
        body = self.body
        if isinstance(body, Text) and "\n" not in body.plain:
            self.update(Text.assemble(prompt, " ", body))
        else:
            self.update(Group(prompt, body))
