"""matplotlib figures as mime bundles: the formats asked for, with text/plain.

Registered for ``matplotlib.figure.Figure`` when matplotlib is imported in the
worker (see ``ipython_compat``), so a figure as a cell's last expression or in
``display(fig)`` shows as an image whatever the backend. A figure pyplot
manages is closed once shown, so the end of the cell does not show it twice.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from ipytui.kernel.worker.notebook_shell import get_ipython

MIME = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "svg": "image/svg+xml",
        "pdf": "application/pdf"}
DEFAULT_FORMATS = ("png",)


def figure_formats() -> list[str]:
    """The formats set with ``%config InlineBackend.figure_formats = [...]`` (png by default)."""
    shell = get_ipython()
    formats = shell.config["InlineBackend"].get("figure_formats") if shell is not None else None
    chosen = [f for f in (formats or DEFAULT_FORMATS) if f in MIME]
    return chosen or list(DEFAULT_FORMATS)


def figure_bundle(fig: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figure rendered in each chosen format (bytes for binary ones, str for svg)."""
    data: dict[str, Any] = {"text/plain": repr(fig)}
    metadata: dict[str, Any] = {}
    for fmt in figure_formats():
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches="tight")
        value = buffer.getvalue()
        data[MIME[fmt]] = value.decode("utf-8") if fmt == "svg" else value
    close_if_managed(fig)
    return data, metadata


def close_if_managed(fig: Any) -> None:
    """Close a figure pyplot manages (as matplotlib-inline does after showing it)."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is not None:
        helpers.Gcf.destroy_fig(fig)  # nothing happens for a figure pyplot does not manage


def register() -> None:
    """Format matplotlib figures in this worker (called once matplotlib.figure is loaded)."""
    from ipytui.kernel.worker.display import register_formatter
    from matplotlib.figure import Figure

    register_formatter(Figure, figure_bundle)
