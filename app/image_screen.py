"""ImageScreen: one picture of the output stream, as large as the terminal allows."""

from __future__ import annotations

from ipytui.widgets.image_data import ImageData
from ipytui.widgets.image_output import cell_pixels, fit_cells, image_widget_class
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Static

# Rows for the caption line under the picture.
CAPTION_ROWS = 1


class ImageScreen(ModalScreen[None]):
    """Full screen view; Escape closes, ``s`` saves (the main screen writes the file)."""

    BINDINGS = [
        Binding("escape,enter,q", "dismiss", "Close"),
        Binding("s", "save", "Save image"),
    ]

    def __init__(self, image: ImageData, mode: str) -> None:
        super().__init__()
        self.image = image
        self.mode = mode
        self.picture = image_widget_class(mode)(image.pixels, id="image-full")
        self.saved_to: str | None = None

    def compose(self) -> ComposeResult:
        with Middle(id="image-dialog"), Center():
            yield self.picture
            yield Static(f"{self.image.label} · Escape closes · s saves", id="image-caption")

    def on_resize(self, event: Resize) -> None:
        rows = max(1, event.size.height - CAPTION_ROWS)
        pixels = (self.image.width, self.image.height)
        width, height = fit_cells(pixels, cell_pixels(), event.size.width, rows)
        # Full screen means as large as fits: a small picture is scaled up too.
        scale = min(event.size.width / width, rows / height)
        self.picture.styles.width = max(1, int(width * scale))
        self.picture.styles.height = max(1, int(height * scale))

    def action_save(self) -> None:
        from .image_save import save_image

        self.saved_to = save_image(self.app, self.image)
