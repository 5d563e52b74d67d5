"""Saving a picture from the output stream: its original bytes, never half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ipytui.widgets.image_data import ImageData

# Files go to the directory the UI was started in, named so that none is overwritten.
NAME_PATTERN = "ipytui-image-{n}.{ext}"
MAX_NAMES = 10_000


def free_path(directory: Path, extension: str) -> Path:
    """The first ``ipytui-image-N.ext`` in ``directory`` that does not exist yet."""
    for n in range(1, MAX_NAMES):
        path = directory / NAME_PATTERN.format(n=n, ext=extension)
        if not path.exists():
            return path
    raise OSError(f"no free ipytui-image-N.{extension} name left in {directory}")


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a failure leaves no partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ipytui-image-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image(app: Any, image: ImageData, directory: Path | None = None) -> str | None:
    """Save the picture as sent (PNG, JPEG, SVG…); tell the user where, or why not."""
    try:
        path = free_path(directory or Path.cwd(), image.extension)
        write_atomically(path, image.raw)
    except OSError as exc:
        app.notify(f"Image not saved: {exc}", severity="error")
        return None
    app.notify(f"Image saved to {path}")
    return str(path)
