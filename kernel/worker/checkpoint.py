"""Durable pickle checkpoints of a namespace, and loading them back.

Values are pickled one by one so one bad object costs only itself. Modules
are stored by name, and functions and classes defined in cells by their
source (cells are in linecache), because pickle stores those by reference.
What pickle refuses (lambdas, closures, functions made at run time) is
pickled by value with cloudpickle, as ipyparallel and Dask do; its output
loads with plain ``pickle.loads``.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import time
import types
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.atomic import write_atomic

FORMAT = 1


def _by_source(value: Any) -> str | None:
    """Source of a function or class defined in a cell, if it can be re-run."""
    if not isinstance(value, (types.FunctionType, type)):
        return None
    if getattr(value, "__module__", None) != "__main__" or value.__name__ == "<lambda>":
        return None
    try:
        source = inspect.getsource(value)
    except (OSError, TypeError):
        return None
    return source if not source[:1].isspace() else None


def capture(namespace: dict[str, Any], names: list[str], execution_count: int) -> dict[str, Any]:
    """A picklable description of the namespace, with the names it had to leave out."""
    state: dict[str, Any] = {"format": FORMAT, "time": time.time(), "execution_count": execution_count,
                             "modules": {}, "sources": {}, "values": {}, "unpicklable": {}}
    for name in names:
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            state["modules"][name] = value.__name__
            continue
        source = _by_source(value)
        if source is not None:
            state["sources"][name] = source
            continue
        try:
            state["values"][name] = _dumps(value)
        except Exception as exc:  # noqa: BLE001 - every failure is a reason to report
            state["unpicklable"][name] = (f"{type(value).__name__}: not picklable "
                                          f"({type(exc).__name__}: {str(exc)[:200]})")
    return state


def _dumps(value: Any) -> bytes:
    """pickle first (fast, by reference); cloudpickle (by value) for what it refuses,
    and for functions and classes of the user namespace, which a new process could not
    find by reference."""
    if not (isinstance(value, (types.FunctionType, type)) and value.__module__ == "__main__"):
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001, S110 - pickle raises many kinds; cloudpickle's turn
            pass
    if isinstance(value, io.IOBase):
        # cloudpickle would keep a copy of a file's contents: a different object that
        # only looks like the open file it replaces.
        raise TypeError("an open file or stream cannot be restored")
    import cloudpickle

    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def write(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename): a crash or a full disk leaves
    the old checkpoint and no temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, lambda f: pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL), fsync=True)


def read(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        state = pickle.load(f)  # noqa: S301 - our own 0600 file
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ipytui checkpoint")
    return state


class _NamespaceUnpickler(pickle.Unpickler):
    """Finds ``__main__`` classes and functions in the restored namespace.

    pickle stores an instance of a class defined in a cell by reference
    (``__main__.P``); the class itself comes back from its source into the
    user namespace, which need not be the ``__main__`` module's.
    """

    def __init__(self, file: io.BytesIO, namespace: dict[str, Any]) -> None:
        super().__init__(file)
        self.namespace = namespace

    def find_class(self, module: str, name: str) -> Any:
        head, _, rest = name.partition(".")
        if module == "__main__" and head in self.namespace:
            value = self.namespace[head]
            for part in rest.split(".") if rest else ():
                value = getattr(value, part)
            return value
        return super().find_class(module, name)


def restore(state: dict[str, Any], namespace: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Load a checkpoint into namespace; returns (restored names, lost name -> why)."""
    restored: list[str] = []
    lost: dict[str, str] = dict(state.get("unpicklable", {}))
    for name, module in state.get("modules", {}).items():
        try:
            namespace[name] = importlib.import_module(module)
            restored.append(name)
        except Exception as exc:  # noqa: BLE001
            lost[name] = f"import {module} failed: {exc}"
    for name, source in state.get("sources", {}).items():
        try:
            exec(compile(source, f"<restored {name}>", "exec"), namespace)  # noqa: S102
            restored.append(name)
        except Exception as exc:  # noqa: BLE001
            lost[name] = f"re-running its definition failed: {exc}"
    # An instance refers to its class by name: load in rounds, so a value whose class
    # (or function) is another restored name comes back once that one is in.
    pending = dict(state.get("values", {}))
    while pending:
        failed: dict[str, str] = {}
        for name, blob in pending.items():
            try:
                namespace[name] = _NamespaceUnpickler(io.BytesIO(blob), namespace).load()
                restored.append(name)
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"unpickling failed: {type(exc).__name__}: {exc}"
        if len(failed) == len(pending):
            lost.update(failed)
            break
        pending = {name: pending[name] for name in failed}
    return sorted(restored), lost
