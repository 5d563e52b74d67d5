"""What an output shows for a MIME bundle: a picture or a rendering, and its plain form.

One decision for every output (results, displays, display updates): a
bundle with an image becomes a picture unless images are off; a broken
image or an SVG nothing can draw becomes a labelled placeholder that says
why, above the text/plain form, so nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from .image_data import SVG_TYPE, ImageData, ImageError, first_image_type, image_from_bundle
from .image_output import images_available
from .mimebundle import ansi_text, placeholder, raw_plain, render_bundle


@dataclass
class BundleView:
    """``content`` to show; ``raw`` is the text/plain a key toggles to (None: nothing to toggle)."""

    content: RenderableType | ImageData
    raw: RenderableType | None = None


def _with_plain(label: Text, data: dict[str, Any]) -> RenderableType:
    plain = data.get("text/plain")
    if isinstance(plain, (str, list)):
        text = "".join(plain) if isinstance(plain, list) else plain
        return Group(label, ansi_text(text))
    return label


def view_bundle(
    data: dict[str, Any], metadata: dict[str, Any] | None = None, images: str = "auto"
) -> BundleView:
    """The view of a bundle for the config's ``images`` mode (``off``: placeholders)."""
    metadata = metadata or {}
    mime = first_image_type(data)
    if mime is not None and images != "off" and images_available():
        try:
            image = image_from_bundle(data, metadata)
        except ImageError as exc:
            label = placeholder(mime, data[mime], metadata)
            label.append(f" cannot be drawn: {exc}")
            return BundleView(_with_plain(label, data))
        if image is not None:
            return BundleView(image)
        if mime == SVG_TYPE:
            label = placeholder(mime, data[mime], metadata)
            label.append(" (install cairosvg to draw SVG)")
            return BundleView(_with_plain(label, data))
    return BundleView(render_bundle(data, metadata), raw_plain(data))
