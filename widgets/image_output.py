"""ImageOutput: a picture in the output stream, drawn with textual-image.

The drawing protocol (kitty graphics, sixel, or unicode half blocks, which
work in every terminal and in tmux) is the config's ``images`` choice;
``auto`` takes what textual-image detected when the UI started. The picture
gets its natural size in cells, shrunk (aspect kept) to the pane's width and
the screen's height, and is laid out again whenever the pane is resized.
Focused (click, or F7 from the editor), Enter asks for it full screen and
``s`` asks to save it; the screen does both.
"""

from __future__ import annotations

import functools
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from .image_data import ImageData

# Rows kept free of the picture so that a whole one fits beside the input and the bars.
SCREEN_MARGIN_ROWS = 8
MIN_ROWS = 2


def image_widget_class(mode: str) -> type[Widget]:
    """The textual-image widget class for a config ``images`` mode (not ``off``).

    Imported here, lazily: textual-image asks the terminal what it supports when
    first imported, which must happen before Textual takes the terminal.
    """
    from textual_image import widget as timg
    from textual_image.renderable.halfcell import Image as TextualImageHalfcell

    auto = timg.Image
    if getattr(auto, "_Renderable", None) is TextualImageHalfcell:
        auto = halfblock_widget_class()  # the same look, drawn faster
    classes: dict[str, Any] = {
        "auto": auto,
        "kitty": timg.TGPImage,
        "sixel": timg.SixelImage,
        "halfblock": halfblock_widget_class(),
    }
    return classes.get(mode, auto)


def halfblock_widget_class() -> type[Widget]:
    """textual-image's widget drawing with ``HalfblockPicture`` (made once, on first use)."""
    global _halfblock_class
    if _halfblock_class is None:
        from textual_image.widget._base import Image as ImageWidget

        from .halfblock import HalfblockPicture

        class HalfblockImage(ImageWidget, Renderable=HalfblockPicture):  # type: ignore[call-arg]
            """A picture in unicode half blocks: works in every terminal, tmux included."""

        _halfblock_class = HalfblockImage
    return _halfblock_class


_halfblock_class: type[Widget] | None = None


def probe_terminal() -> str | None:
    """Let textual-image ask the terminal what it draws, before Textual takes the terminal.

    Returns None when ready, else why images cannot be drawn (then they stay placeholders).
    """
    try:
        import textual_image.widget  # noqa: F401 - importing it is the probe
    except Exception as exc:  # ImportError, or a terminal that answers nonsense
        return f"inline images off: {type(exc).__name__}: {exc}"
    return None


@functools.cache
def images_available() -> bool:
    """True when textual-image (and Pillow) can be imported: else pictures stay labels."""
    try:
        import textual_image.widget  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def cell_pixels() -> tuple[int, int]:
    """Width and height of one terminal cell in pixels (textual-image's measurement)."""
    from textual_image._terminal import get_cell_size

    size = get_cell_size()
    return size.width, size.height


def fit_cells(
    pixels: tuple[int, int], cell: tuple[int, int], max_width: int, max_height: int
) -> tuple[int, int]:
    """The picture's size in cells: natural, shrunk to fit, aspect kept, never zero."""
    width_px, height_px = pixels
    cell_w, cell_h = cell
    width = max(1, round(width_px / cell_w))
    height = max(1, round(height_px / cell_h))
    scale = min(1.0, max_width / width if max_width > 0 else 1.0)
    scale = min(scale, max_height / height if max_height > 0 else 1.0)
    if scale < 1.0:
        width = max(1, int(width * scale))
        height = max(MIN_ROWS, round(width * cell_w * height_px / width_px / cell_h))
    return width, height


class ImageOutput(Vertical, can_focus=True):
    """One picture (a display or a result), with an optional ``Out[n]:`` prompt."""

    BINDINGS = [
        Binding("enter", "view", "Full screen", show=True),
        Binding("s", "save", "Save image", show=True),
    ]

    DEFAULT_CSS = """
    ImageOutput {
        height: auto;
    }
    ImageOutput > .image-output--prompt, ImageOutput > .image-output--caption {
        height: auto;
    }
    """

    class ViewRequested(Message):
        """The user asked to see ``output``'s picture full screen."""

        def __init__(self, output: ImageOutput) -> None:
            super().__init__()
            self.output = output

    class SaveRequested(Message):
        """The user asked to save ``output``'s picture to a file."""

        def __init__(self, output: ImageOutput) -> None:
            super().__init__()
            self.output = output

    def __init__(
        self,
        image: ImageData,
        *,
        mode: str = "auto",
        kind: str = "display",
        prompt: str | None = None,
        display_id: str | None = None,
    ) -> None:
        super().__init__(classes=f"-{kind} -image")
        self.image = image
        self.mode = mode
        self.kind = kind
        self.prompt = prompt
        self.display_id = display_id
        self.cells = fit_cells(image.display_pixels, cell_pixels(), 0, 0)
        self._prompt = Static(Text(prompt or ""), classes="image-output--prompt")
        self._prompt.display = bool(prompt)
        self._picture = image_widget_class(mode)(image.pixels, classes="image-output--picture")
        self._caption = Static(Text(image.label), classes="image-output--caption")

    def compose(self):
        yield self._prompt
        yield self._picture
        yield self._caption

    @property
    def plain(self) -> str:
        return f"{self.prompt} {self.image.label}" if self.prompt else self.image.label

    @property
    def line_count(self) -> int:
        return self.cells[1] + (1 if self.prompt else 0)

    def set_image(self, image: ImageData) -> None:
        """Show another picture in place (update_display_data)."""
        self.image = image
        self._caption.update(Text(image.label))
        self._picture.image = image.pixels  # type: ignore[attr-defined]
        self._fit(self.size.width)

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        if width <= 0:
            return
        max_rows = max(MIN_ROWS, self.app.size.height - SCREEN_MARGIN_ROWS)
        self.cells = fit_cells(self.image.display_pixels, cell_pixels(), width, max_rows)
        self._picture.styles.width = self.cells[0]
        self._picture.styles.height = self.cells[1]

    def action_view(self) -> None:
        self.post_message(self.ViewRequested(self))

    def action_save(self) -> None:
        self.post_message(self.SaveRequested(self))
