"""Durable pickle checkpoints of a namespace, and loading them back.

Values are pickled one by one so one bad object costs only itself. Modules
are stored by name, and functions and classes defined in cells by their
source (cells are in linecache), because pickle stores those by reference.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import time
import types
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.paths import temporary_path

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
            state["values"][name] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - every failure is a reason to report
            state["unpicklable"][name] = f"{type(value).__name__}: not picklable ({type(exc).__name__})"
    return state


def write(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename) so a crash leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = temporary_path(path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        state = pickle.load(f)  # noqa: S301 - our own 0600 file
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ipytui checkpoint")
    return state


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
    for name, blob in state.get("values", {}).items():
        try:
            namespace[name] = pickle.loads(blob)  # noqa: S301
            restored.append(name)
        except Exception as exc:  # noqa: BLE001
            lost[name] = f"unpickling failed: {type(exc).__name__}: {exc}"
    return sorted(restored), lost
