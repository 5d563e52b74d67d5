"""%matplotlib and %config: the two magics notebook code expects to run unchanged."""

from __future__ import annotations

import ast
from typing import Any

from ipytui.kernel.worker.magics.registry import UsageError, line_magic
from ipytui.kernel.worker.notebook_shell import get_ipython

INLINE = "module://ipytui.kernel.worker.mpl_backend"
ALIASES = {"inline": INLINE, "widget": "module://ipympl.backend_nbagg",
           "ipympl": "module://ipympl.backend_nbagg"}
FIGURE_FORMATS = {"png", "svg", "jpeg", "jpg", "pdf"}


@line_magic
def matplotlib(shell: Any, line: str) -> None:
    """%matplotlib [inline | BACKEND | --list]

    Choose pyplot's backend. `inline` (the default) shows figures in the cell's
    output as images; any other name is passed to matplotlib.
    """
    arg = line.strip() or "inline"
    try:
        import matplotlib as mpl
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError(f"%matplotlib needs matplotlib: {exc}") from None
    if arg == "--list":
        print("Available matplotlib backends:", ", ".join(["inline", *_backends(mpl)]))
        return
    backend = ALIASES.get(arg, arg)
    try:
        plt.switch_backend(backend)
    except (ImportError, ValueError, RuntimeError) as exc:
        raise UsageError(f"cannot use matplotlib backend {arg!r}: {exc}") from None


def _backends(mpl: Any) -> list[str]:
    try:
        from matplotlib.backends import backend_registry

        return sorted(backend_registry.list_builtin())
    except ImportError:
        return sorted(mpl.rcsetup.all_backends)


@line_magic
def config(shell: Any, line: str) -> None:
    """%config [SECTION[.name = value]]

    Show or set the kernel's configuration, e.g.
    `%config InlineBackend.figure_formats = ['png', 'svg']`.
    """
    ipython = get_ipython()
    if ipython is None:
        raise UsageError("%config works only inside the kernel")
    text = line.strip()
    if not text:
        print("Sections:", ", ".join(sorted(ipython.config)))
        return
    target, eq, value_text = text.partition("=")
    section, dot, name = target.strip().partition(".")
    if not eq:
        if dot or section not in ipython.config:
            raise UsageError(f"no config section {target.strip()!r}; try %config alone")
        for key, value in sorted(ipython.config[section].items()):
            print(f"{section}.{key} = {value!r}")
        return
    if not section.isidentifier() or not name.isidentifier():
        raise UsageError("expected SECTION.name = value")
    try:
        value = ast.literal_eval(value_text.strip())
    except (ValueError, SyntaxError):
        raise UsageError(f"the value must be a Python literal, not {value_text.strip()!r}") from None
    if section == "InlineBackend" and name in ("figure_format", "figure_formats"):
        value = _figure_formats(value)
        name = "figure_formats"
    ipython.config[section][name] = value


def _figure_formats(value: Any) -> list[str]:
    formats = [value] if isinstance(value, str) else value
    if not isinstance(formats, (list, tuple, set)) or not formats:
        raise UsageError("figure formats must be a format name or a list of them")
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise UsageError(f"unknown figure format(s) {bad}; choose from {sorted(FIGURE_FORMATS)}")
    return list(formats)
