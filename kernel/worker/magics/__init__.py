"""IPython-style conveniences for the worker: magics, ``!shell``, ``obj?``.

``transform_cell`` rewrites a cell into plain Python calling the builtin
``__ipytui__``, a ``MagicShell`` the worker installs; magics live in a registry
users extend with ``@line_magic`` / ``@cell_magic``. Never imports zmq or Textual.
"""

from __future__ import annotations

from ipytui.kernel.protocol.syntax import transform_cell
from ipytui.kernel.worker.magics import (  # noqa: F401 - importing registers them
    files,
    history,
    namespace_magics,
    notebook_magics,
    parallel,
    protection_magics,
    system_magics,
    timing,
)
from ipytui.kernel.worker.magics.process import SList
from ipytui.kernel.worker.magics.registry import (
    Magic,
    UsageError,
    all_magics,
    cell_magic,
    line_magic,
    lookup,
    magic_help,
    unregister,
)
from ipytui.kernel.worker.magics.shell import KernelContext, MagicShell
from ipytui.kernel.worker.magics.timing import TimeitResult, format_time

__all__ = [
    "KernelContext",
    "Magic",
    "MagicShell",
    "SList",
    "TimeitResult",
    "UsageError",
    "all_magics",
    "cell_magic",
    "format_time",
    "line_magic",
    "lookup",
    "magic_help",
    "transform_cell",
    "unregister",
]
