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

The canning map names some classes by their dotted path (``"numpy.ndarray"``,
``"ipyparallel.dependent"``), and the first ``can`` imports them all: numpy,
and the whole package for ``dependent``. An object of such a class can only
exist once its module is imported, so those entries wait outside the map
until then: ``ready_to_can``, called before each result is serialized, puts
back (as classes) the ones whose module has been imported since.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any

PACKAGE = "ipyparallel"
# The module whose import makes a class of the canning map exist, where it is not
# the class's own dotted path.
DEFINED_IN = {"ipyparallel.dependent": "ipyparallel.controller.dependency"}

_lock = threading.RLock()
_waiting: dict[str, Any] = {}  # dotted class path -> its canner, until its module is imported


def install() -> None:
    """Make ``ipyparallel.serialize`` importable without the package's ``__init__``
    (a no-op if ipyparallel is imported already). Raises ImportError if it is missing."""
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
        for key in [key for key in canning.can_map if isinstance(key, str)]:
            _waiting[key] = canning.can_map.pop(key)
        ready_to_can()


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
    """Put the waiting canning-map entries whose module is imported back, as classes."""
    if not _waiting:
        return
    ready = [key for key in list(_waiting) if _module_of(key) in sys.modules]
    if not ready:
        return
    from ipyparallel.serialize.canning import can_map
    from traitlets import import_item

    with _lock:
        for key in ready:
            canner = _waiting.pop(key, None)
            if canner is None:
                continue
            try:
                can_map[import_item(key)] = canner
            except Exception:  # noqa: BLE001 - not importable yet (or at all): it waits on
                _waiting[key] = canner


def _module_of(key: str) -> str:
    return DEFINED_IN.get(key) or key.rpartition(".")[0]
