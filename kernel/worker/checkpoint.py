"""Durable pickle checkpoints of a namespace, and loading them back.

Values are pickled one by one so one bad object costs only itself. Modules
are stored by name, and functions and classes defined in cells by their
source (cells are in linecache), because pickle stores those by reference.
What pickle refuses (lambdas, closures, functions made at run time) is
pickled by value with cloudpickle, as ipyparallel and Dask do; its output
loads with plain ``pickle.loads``.

Large contiguous buffers (numpy arrays' data) are pickled out of band
(protocol 5): the pickle holds only their lengths and the file holds their
bytes right after it, written straight from the live object. So writing the
checkpoint of a 1 GiB array takes no second GiB of RAM, and a restore point
whose array was spilled to disk (worker/spill.py) reads it from its spill
file while writing, giving each written buffer's pages back at once.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ipytui.kernel.protocol.atomic import write_atomic

FORMAT = 2  # 1: no out-of-band buffers (still read)
OUT_OF_BAND = 1 << 20  # buffers this large go after the pickle, not into it
WRITE_CHUNK = 64 << 20  # an out-of-band buffer is written (and its pages let go) this much at a time


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
                             "modules": {}, "sources": {}, "values": {}, "unpicklable": {},
                             "buffers": {}}
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
            state["values"][name], buffers = _dumps(value)
            if buffers:
                state["buffers"][name] = buffers
        except Exception as exc:  # noqa: BLE001 - every failure is a reason to report
            state["unpicklable"][name] = (f"{type(value).__name__}: not picklable "
                                          f"({type(exc).__name__}: {str(exc)[:200]})")
    return state


def _dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    """pickle first (fast, by reference; large contiguous buffers out of band, as
    views of the live object); cloudpickle (by value) for what it refuses, and for
    functions and classes of the user namespace, which a new process could not
    find by reference."""
    if not (isinstance(value, (types.FunctionType, type)) and value.__module__ == "__main__"):
        try:
            return _dumps_out_of_band(value)
        except Exception:  # noqa: BLE001, S110 - pickle raises many kinds; cloudpickle's turn
            pass
    if isinstance(value, io.IOBase):
        # cloudpickle would keep a copy of a file's contents: a different object that
        # only looks like the open file it replaces.
        raise TypeError("an open file or stream cannot be restored")
    import cloudpickle

    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), []


def _dumps_out_of_band(value: Any) -> tuple[bytes, list[memoryview]]:
    """Protocol 5 with large contiguous buffers kept out of the pickle (as views);
    in band again if one of them is not contiguous."""
    views: list[memoryview] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: into the pickle, copied
            return True
        if view.nbytes < OUT_OF_BAND:
            return True
        views.append(view)
        return False

    return pickle.dumps(value, protocol=5, buffer_callback=keep), views


def write(path: Path, state: dict[str, Any], after_buffer: Callable[[], None] | None = None) -> None:
    """Write atomically (temp file, fsync, rename): a crash or a full disk leaves
    the old checkpoint and no temporary file. The pickle of ``state`` (buffers by
    length) comes first, then each out-of-band buffer's bytes; ``after_buffer`` is
    called after each WRITE_CHUNK of them is written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffers = state.get("buffers", {})
    head = {**state, "buffers": {name: [v.nbytes for v in views] for name, views in buffers.items()}}

    def dump(f: IO[bytes]) -> None:
        pickle.dump(head, f, protocol=pickle.HIGHEST_PROTOCOL)
        for views in buffers.values():
            for view in views:
                for at in range(0, view.nbytes, WRITE_CHUNK):
                    f.write(view[at : at + WRITE_CHUNK])
                    if after_buffer is not None:
                        after_buffer()

    write_atomic(path, dump, fsync=True)


def read(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        state = pickle.load(f)  # noqa: S301 - our own 0600 file
        if not isinstance(state, dict) or state.get("format") not in (1, FORMAT):
            raise ValueError(f"{path} is not an ipytui checkpoint")
        buffers: dict[str, list[bytearray]] = {}
        for name, sizes in state.get("buffers", {}).items():
            buffers[name] = [_read_exactly(f, size, path) for size in sizes]
    state["buffers"] = buffers
    return state


def _read_exactly(f: IO[bytes], size: int, path: Path) -> bytearray:
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise ValueError(f"{path} is cut short: a buffer is missing")
        got += n
    return data


class _NamespaceUnpickler(pickle.Unpickler):
    """Finds ``__main__`` classes and functions in the restored namespace.

    pickle stores an instance of a class defined in a cell by reference
    (``__main__.P``); the class itself comes back from its source into the
    user namespace, which need not be the ``__main__`` module's.
    """

    def __init__(self, file: io.BytesIO, namespace: dict[str, Any],
                 buffers: list[bytearray] | None = None) -> None:
        super().__init__(file, buffers=buffers)
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
                buffers = state.get("buffers", {}).get(name)
                namespace[name] = _NamespaceUnpickler(io.BytesIO(blob), namespace, buffers).load()
                restored.append(name)
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"unpickling failed: {type(exc).__name__}: {exc}"
        if len(failed) == len(pending):
            lost.update(failed)
            break
        pending = {name: pending[name] for name in failed}
    return sorted(restored), lost
