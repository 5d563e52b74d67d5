"""The magic registry: decorators that register magics, lookup, help and errors.

A magic is a plain function ``fn(shell, line)`` (line magic) or
``fn(shell, line, cell)`` (cell magic); its docstring is its help, and the
first line of the docstring is its usage line. Users extend the set with::

    from ipytui.kernel.worker.magics import line_magic

    @line_magic
    def hello(shell, line):
        "%hello NAME -- greet someone"
        print("hello", line)
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["line", "cell"]
MagicFunction = Callable[..., Any]


class UsageError(Exception):
    """A magic used wrongly; the worker prints the message alone, without a traceback."""


class ArgumentError(UsageError):
    """Bad arguments; the shell appends the magic's usage line to the message."""


@dataclass(frozen=True)
class Magic:
    """One registered magic."""

    name: str
    kind: Kind
    fn: MagicFunction
    expand_vars: bool = True  # expand {expr} and $name in the line before the call

    @property
    def prefix(self) -> str:
        return "%" if self.kind == "line" else "%%"

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.fn.__doc__ or f"{self.prefix}{self.name}\n\nNo help available.")

    @property
    def usage(self) -> str:
        return self.doc.splitlines()[0]


_MAGICS: dict[str, dict[str, Magic]] = {"line": {}, "cell": {}}


def _decorator(kind: Kind, name: Any, expand_vars: bool) -> Any:
    def register(fn: MagicFunction) -> MagicFunction:
        magic_name = name if isinstance(name, str) else fn.__name__
        _MAGICS[kind][magic_name] = Magic(magic_name, kind, fn, expand_vars)
        return fn

    if callable(name):  # used bare: @line_magic
        return register(name)
    return register


def line_magic(name: str | MagicFunction | None = None, *, expand_vars: bool = True) -> Any:
    """Register ``fn(shell, line)`` as ``%name`` (default: the function's name)."""
    return _decorator("line", name, expand_vars)


def cell_magic(name: str | MagicFunction | None = None, *, expand_vars: bool = True) -> Any:
    """Register ``fn(shell, line, cell)`` as ``%%name`` (default: the function's name)."""
    return _decorator("cell", name, expand_vars)


_CELL_REWRITERS: list[Callable[[str], str]] = []


def add_cell_rewriter(rewrite: Callable[[str], str]) -> None:
    """Have ``rewrite(code) -> code`` see every cell before it runs (``%autopx``)."""
    if rewrite not in _CELL_REWRITERS:
        _CELL_REWRITERS.append(rewrite)


def remove_cell_rewriter(rewrite: Callable[[str], str]) -> None:
    if rewrite in _CELL_REWRITERS:
        _CELL_REWRITERS.remove(rewrite)


def rewrite_cell(code: str) -> str:
    """A cell as the registered rewriters leave it (unchanged when there are none)."""
    for rewrite in list(_CELL_REWRITERS):
        code = rewrite(code)
    return code


def unregister(name: str, kind: Kind = "line") -> None:
    """Remove a magic; removing one that does not exist is not an error."""
    _MAGICS[kind].pop(name, None)


def lookup(name: str, kind: Kind = "line") -> Magic | None:
    """The magic registered under ``name`` for ``kind``, or None."""
    return _MAGICS[kind].get(name)


def all_magics() -> dict[str, dict[str, Magic]]:
    """A copy of the registry: ``{"line": {name: Magic}, "cell": {name: Magic}}``."""
    return {kind: dict(magics) for kind, magics in _MAGICS.items()}


def not_found(name: str, kind: Kind) -> UsageError:
    """The error for an unknown magic, naming the closest known one."""
    prefix = "%" if kind == "line" else "%%"
    message = f"{kind.capitalize()} magic function `{prefix}{name}` not found."
    if name in _MAGICS["cell" if kind == "line" else "line"]:
        other = "%%" if kind == "line" else "%"
        return UsageError(f"{message} Did you mean `{other}{name}`?")
    candidates = [f"%{n}" for n in _MAGICS["line"]] + [f"%%{n}" for n in _MAGICS["cell"]]
    close = difflib.get_close_matches(f"{prefix}{name}", candidates, n=1, cutoff=0.6)
    if close:
        message += f" Did you mean `{close[0]}`?"
    return UsageError(message)


def magic_help(spec: str, detail: int = 0) -> str | None:
    """Help for ``%name`` or ``%%name``; detail 1 adds the source. None if unknown."""
    name = spec.lstrip("%")
    kinds: list[Kind] = ["cell"] if spec.startswith("%%") else ["line", "cell"]
    found = [m for k in kinds if (m := lookup(name, k)) is not None]
    if not found:
        return None
    return "\n\n".join(_one_help(magic, detail) for magic in found)


def _one_help(magic: Magic, detail: int) -> str:
    text = f"{magic.kind.capitalize()} magic {magic.prefix}{magic.name}\n\n{magic.doc}"
    if detail:
        try:
            text += f"\n\nFile: {inspect.getsourcefile(magic.fn)}\nSource:\n{inspect.getsource(magic.fn)}"
        except (OSError, TypeError):
            text += "\n\nSource: not available"
    return text
