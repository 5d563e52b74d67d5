"""The worker's matplotlib backend: ``module://ipytui.kernel.worker.mpl_backend``.

The default in the worker unless MPLBACKEND says otherwise (as ipykernel does
with matplotlib-inline). Figures render with Agg and are shown as images
(``mpl_figures``) by ``plt.show()`` and, for figures still open when a cell
ends, by a ``post_execute`` callback; once shown they are closed.
"""

from __future__ import annotations

import builtins
import warnings
from typing import Any

from ipytui.kernel.worker import mpl_figures
from ipytui.kernel.worker.notebook_shell import get_ipython
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

NAME = "module://ipytui.kernel.worker.mpl_backend"

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def _has_content(figure: Any) -> bool:
    """Empty figures are not shown (a bare ``plt.figure()`` is not worth an image)."""
    return bool(figure.axes or figure.lines or figure.patches or figure.texts or figure.images
                or figure.artists)


def show(block: Any = None, close: bool | None = None) -> None:
    """Show every open figure as an image, then close them."""
    display = getattr(builtins, "display", None)
    if display is None:  # imported by a subprocess that inherited MPLBACKEND
        warnings.warn("the ipytui backend shows figures only inside an ipytui kernel",
                      UserWarning, stacklevel=2)
        return
    for manager in Gcf.get_all_fig_managers():
        figure = manager.canvas.figure
        if _has_content(figure):
            display(figure)  # its formatter closes it
    Gcf.destroy_all()


def flush_figures() -> None:
    """post_execute: the figures a cell left open, while this backend is pyplot's."""
    import matplotlib

    if matplotlib.get_backend() != NAME:
        return
    show()


def _register() -> None:
    mpl_figures.register()
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_execute", flush_figures)


_register()
