"""ipyparallel's serialization in an engine worker, without its package ``__init__``.

``import ipyparallel.serialize`` runs ``ipyparallel/__init__.py`` first, which
imports the client, the cluster API and IPython's terminal: about 0.25 s of CPU
an engine's start pays on the critical path (ipengine pays it too) and a
task's serialization never uses. So the worker puts the package in
``sys.modules`` unexecuted, with a module ``__getattr__`` (PEP 562) that runs
the real ``__init__`` on the first name asked of it: ``import ipyparallel as
ipp; ipp.Client`` or ``from ipyparallel import interactive`` in a task get
the whole package, as on ``ipengine``; submodules (``ipyparallel.util``,
``from ipyparallel import error``) import alone through the package's
``__path__`` (ipyparallel's own modules import their siblings that way, and
none asks the package for anything else while it is imported).

One entry of the canning map names a class of the full package,
``"ipyparallel.dependent"``: resolving it would import everything at the
first ``can``. It is taken out while the package is lean and put back, as
the class, as soon as ``ipyparallel.controller.dependency`` is imported (the
only way a ``dependent`` object can exist): ``ready_to_can`` checks before
each result is serialized.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any

PACKAGE = "ipyparallel"
DEPENDENT = "ipyparallel.dependent"
DEPENDENCY_MODULE = "ipyparallel.controller.dependency"

_lock = threading.RLock()
_dependent_pending = False


def install() -> None:
    """Make ``ipyparallel.serialize`` importable without the package's ``__init__``
    (a no-op if ipyparallel is imported already). Raises ImportError if it is missing."""
    global _dependent_pending
    with _lock:
        if PACKAGE in sys.modules:
            return
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.loader is None:
            raise ImportError(f"No module named {PACKAGE!r}")
        package = importlib.util.module_from_spec(spec)
        package.__getattr__ = _full_package(package, spec)  # type: ignore[method-assign]
        sys.modules[PACKAGE] = package
        try:
            from ipyparallel.serialize import canning
        except BaseException:
            sys.modules.pop(PACKAGE, None)
            raise
        if canning.can_map.pop(DEPENDENT, None) is not None:
            _dependent_pending = True


def _full_package(package: types.ModuleType, spec: Any) -> Any:
    """The package's ``__getattr__``: run the real ``__init__`` once, then answer."""

    def __getattr__(name: str) -> Any:
        if not name.startswith("__") and importlib.util.find_spec(f"{PACKAGE}.{name}"):
            # A submodule (``from ipyparallel import error`` inside ipyparallel's own
            # modules): imported alone, as the import system would, not the package.
            return importlib.import_module(f"{PACKAGE}.{name}")
        with _lock:
            lazy = package.__dict__.pop("__getattr__", None)
            if lazy is not None:
                try:
                    spec.loader.exec_module(package)
                except BaseException:
                    package.__getattr__ = lazy  # a later access tries again
                    raise
        ready_to_can()
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    return __getattr__


def ready_to_can() -> None:
    """Put ``dependent`` back in the canning map once its module is imported."""
    global _dependent_pending
    if not _dependent_pending or DEPENDENCY_MODULE not in sys.modules:
        return
    with _lock:
        if not _dependent_pending:
            return
        from ipyparallel.controller.dependency import dependent
        from ipyparallel.serialize.canning import can_dependent, can_map

        can_map[dependent] = can_dependent
        _dependent_pending = False
