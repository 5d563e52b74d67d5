"""OutputActions: the screen's side of rich outputs (select, full screen, save).

Outputs that can do something (a picture, an HTML or LaTeX rendering with a
plain form to toggle to) take focus; F7 walks them from the newest, Escape
returns to the editor. A picture asks for full screen or saving by message;
the screen does both, so widgets never push screens or write files.
"""

from __future__ import annotations

from typing import Any

from ipytui.widgets.image_output import ImageOutput

from .image_save import save_image
from .image_screen import ImageScreen


class OutputActions:
    """Mixin for MainScreen: acts on the selected output."""

    stream: Any
    editor: Any
    focused: Any
    app: Any
    config: Any

    def selectable_outputs(self) -> list[Any]:
        """Outputs that take focus, oldest first."""
        found: list[Any] = []
        for cell in self.stream.cells.values():
            found.extend(o for o in cell.outputs() if o.can_focus and o.is_attached)
        return found

    def action_select_output(self) -> None:
        """Focus the newest selectable output, or the one before the focused one."""
        outputs = self.selectable_outputs()
        if not outputs:
            self.app.notify("No image or rendered output to select")
            return
        current = self.focused
        index = outputs.index(current) - 1 if current in outputs else len(outputs) - 1
        target = outputs[index % len(outputs)]
        target.focus()
        target.scroll_visible(animate=False)

    def typing_leaves_output(self, key: str) -> bool:
        """True when a selected output has no use for ``key``: typing then goes to the editor."""
        if not self.output_selected():
            return False
        bound = {k.strip() for b in type(self.focused).BINDINGS for k in b.key.split(",")}
        return key not in bound

    def output_selected(self) -> bool:
        """True while an output has focus (Escape then returns to the editor)."""
        return self.focused in self.selectable_outputs()

    # Named handlers, not @on: Textual collects @on only from DOM classes, not mixins.
    def on_image_output_view_requested(self, event: ImageOutput.ViewRequested) -> None:
        self.app.push_screen(ImageScreen(event.output.image, event.output.mode))

    def on_image_output_save_requested(self, event: ImageOutput.SaveRequested) -> None:
        save_image(self.app, event.output.image)
