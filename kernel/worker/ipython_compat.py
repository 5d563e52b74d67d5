"""When user code imports IPython (or matplotlib), point its notebook probes at the worker.

IPython answers ``get_ipython()`` with its own InteractiveShell, which does
not exist in an ipytui kernel, and then ``IPython.display.display`` only
prints. Libraries (ipywidgets, tqdm.notebook, rich, plotly) import both, so
an import hook adjusts the two modules as they load: ``get_ipython`` returns
our shell and ``display``/``clear_output``/``update_display`` publish on IOPub.
IPython itself is not needed and not imported unless user code does. When
matplotlib's Figure class loads, figures get an image formatter (mpl_figures).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.abc
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ipytui.kernel.worker.notebook_shell import get_ipython


def display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
            transient: Any = None, display_id: Any = None, raw: bool = False, clear: bool = False,
            **kwargs: Any) -> Any:
    """IPython.display.display's signature, publishing through the worker."""
    show = getattr(builtins, "display", None)
    if show is None:  # imported outside a worker (a subprocess): IPython's own fallback
        print(*objs)
        return None
    if clear:
        clear_output(wait=True)
    if transient and not display_id:
        display_id = transient.get("display_id")
    return show(*objs, raw=raw, metadata=metadata, display_id=display_id,
                update=bool(kwargs.get("update")))


def update_display(obj: Any, *, display_id: Any, **kwargs: Any) -> None:
    """Replace what an earlier ``display(..., display_id=...)`` showed."""
    kwargs["update"] = True
    display(obj, display_id=display_id, **kwargs)


def clear_output(wait: bool = False) -> None:
    """Clear the output of the cell being run (wait: at its next output)."""
    clear = getattr(builtins, "clear_output", None)
    if clear is not None:
        clear(wait=wait)


def publish_display_data(data: dict[str, Any], metadata: dict[str, Any] | None = None,
                         source: Any = None, *, transient: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
    """A raw mime bundle as display_data."""
    display(data, raw=True, metadata=metadata, transient=transient, **kwargs)


def _patch_getipython(module: ModuleType) -> None:
    module.get_ipython = get_ipython  # type: ignore[attr-defined]


def _patch_display_functions(module: ModuleType) -> None:
    for fn in (display, update_display, clear_output, publish_display_data):
        setattr(module, fn.__name__, fn)


_PROBED = "ipykernel.zmqshell"


def _before_autonotebook(module: ModuleType) -> None:
    """tqdm.autonotebook picks its notebook class if IPython and ipykernel's shell
    module are imported: import IPython (adjusted as above) and stand in for the
    shell module while tqdm's check runs (removed again right after)."""
    with contextlib.suppress(ImportError):
        importlib.import_module("IPython")
    if _PROBED not in sys.modules:
        stand_in = ModuleType(_PROBED, "ipytui: present only while tqdm.autonotebook loads")
        stand_in.__ipytui_stand_in__ = True  # type: ignore[attr-defined]
        sys.modules[_PROBED] = stand_in


def _after_autonotebook(module: ModuleType) -> None:
    if getattr(sys.modules.get(_PROBED), "__ipytui_stand_in__", False):
        del sys.modules[_PROBED]


MPL_BACKEND = "module://ipytui.kernel.worker.mpl_backend"


def _default_backend(module: ModuleType) -> None:
    """Our backend unless the user's MPLBACKEND names one. Set in this process only
    (not through the environment, as ipykernel does), so a program a cell starts
    with another Python does not inherit a backend it cannot import."""
    if not os.environ.get("MPLBACKEND"):
        module.use(MPL_BACKEND)  # type: ignore[attr-defined]


def _format_figures(module: ModuleType) -> None:
    from ipytui.kernel.worker import mpl_figures

    mpl_figures.register()


# module name -> (run before its code, run after its code)
Hook = Callable[[ModuleType], None]
HOOKS: dict[str, tuple[Hook | None, Hook | None]] = {
    "IPython.core.getipython": (None, _patch_getipython),
    "IPython.core.display_functions": (None, _patch_display_functions),
    "tqdm.autonotebook": (_before_autonotebook, _after_autonotebook),
    "matplotlib": (None, _default_backend),
    "matplotlib.figure": (None, _format_figures),
}


class _HookedLoader(importlib.abc.Loader):
    """Wraps a module's real loader to run our hooks around its code."""

    def __init__(self, loader: Any, before: Hook | None, after: Hook | None) -> None:
        self._loader = loader
        self._before, self._after = before, after

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if self._before is not None:
            self._before(module)
        try:
            self._loader.exec_module(module)
        finally:
            if self._after is not None:
                self._after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... for inspect
        return getattr(self._loader, name)


class HookFinder(importlib.abc.MetaPathFinder):
    """Finds the modules in HOOKS with the other finders and wraps their loader."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        hooks = HOOKS.get(fullname)
        if hooks is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _HookedLoader(spec.loader, *hooks)
        return spec


def install() -> None:
    """Hook future imports; adjust the modules already imported."""
    if not any(isinstance(finder, HookFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, HookFinder())
    for name, (_, after) in HOOKS.items():
        module = sys.modules.get(name)
        if module is not None and after is not None:
            after(module)
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        ipython.get_ipython = get_ipython  # type: ignore[attr-defined]
