"""Images out of MIME bundles: decoded once into pixels, with the original bytes kept.

Pure data, no widgets: the router asks ``image_from_bundle`` whether a bundle
is best shown as a picture, and the image widget draws what comes back. SVG
becomes pixels through its PNG sibling when the bundle has one, else through
cairosvg when it is installed; without either it stays a labelled placeholder.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

# Raster types first: a bundle holding both PNG and SVG is drawn from the PNG.
RASTER_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
SVG_TYPE = "image/svg+xml"
IMAGE_TYPES = (*RASTER_TYPES, SVG_TYPE)
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    SVG_TYPE: "svg",
}
# Decompression bombs: a picture over this many pixels is refused, not decoded.
MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """The bundle's image cannot be decoded (the reason is the message)."""


@dataclass
class ImageData:
    """A decoded picture: ``pixels`` to draw, ``raw`` (and ``mime``) to save as sent."""

    mime: str
    raw: bytes
    pixels: Any  # PIL.Image.Image; Any so that importing this module does not import PIL
    shown_size: tuple[int, int] | None = None  # the kernel's width/height metadata, in pixels

    @property
    def display_pixels(self) -> tuple[int, int]:
        """The size to show it at: the metadata's (aspect filled in), else its own."""
        if self.shown_size is None:
            return self.width, self.height
        width, height = self.shown_size
        return max(1, width or round(height * self.width / self.height)), max(
            1, height or round(width * self.height / self.width)
        )

    @property
    def width(self) -> int:
        return int(self.pixels.width)

    @property
    def height(self) -> int:
        return int(self.pixels.height)

    @property
    def memory(self) -> int:
        """Bytes this picture holds: decoded pixels and the bytes as sent."""
        bands = len(self.pixels.getbands())
        return self.width * self.height * bands + len(self.raw)

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.mime, "bin")

    @property
    def label(self) -> str:
        return f"[{self.mime} {self.width}x{self.height}]"


def first_image_type(data: dict[str, Any]) -> str | None:
    """The image type a bundle would be drawn from, or None when it has none."""
    return next((mime for mime in IMAGE_TYPES if mime in data), None)


def _as_str(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _raster_bytes(value: Any) -> bytes:
    try:
        return base64.b64decode(_as_str(value), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"not base64: {exc}") from None


def _open_pixels(raw: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PIXELS:
            raise ImageError(f"{image.width}x{image.height} is too many pixels to draw")
        image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a readable image: no decoder knows these bytes") from None
    except Exception as exc:  # decoders raise many kinds (bombs, truncation, bad chunks)
        raise ImageError(f"not a readable image: {type(exc).__name__}: {exc}") from None
    # The first frame of an animation; transparency kept for the renderer's background.
    return image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image


def svg_to_png(svg: bytes) -> bytes | None:
    """PNG bytes of an SVG drawn by cairosvg; None when cairosvg (or libcairo) is missing."""
    try:
        import cairosvg
    except (ImportError, OSError):
        return None
    try:
        return cairosvg.svg2png(bytestring=svg, unsafe=False)
    except Exception as exc:  # cairosvg raises many kinds for bad input
        raise ImageError(f"not a drawable SVG: {exc}") from None


def _shown_size(mime: str, metadata: dict[str, Any] | None) -> tuple[int, int] | None:
    """Width/height from the bundle's metadata (IPython's ``Image(width=…)``), if sane."""
    meta = (metadata or {}).get(mime)
    if not isinstance(meta, dict):
        return None
    sizes = [meta.get("width"), meta.get("height")]
    clean = [v if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 100_000 else 0
             for v in sizes]
    return (clean[0], clean[1]) if any(clean) else None


def image_from_bundle(
    data: dict[str, Any], metadata: dict[str, Any] | None = None
) -> ImageData | None:
    """The bundle's picture decoded, or None when there is none or SVG cannot be drawn.

    Raises ImageError when the image is there but broken.
    """
    mime = first_image_type(data)
    if mime is None:
        return None
    shown = _shown_size(mime, metadata)
    if mime == SVG_TYPE:
        svg = _as_str(data[mime]).encode()
        png = svg_to_png(svg)
        if png is None:
            return None
        return ImageData(mime, svg, _open_pixels(png), shown)
    raw = _raster_bytes(data[mime])
    return ImageData(mime, raw, _open_pixels(raw), shown)
