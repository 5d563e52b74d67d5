"""Magics about the interactive namespace and the magics themselves."""

from __future__ import annotations

import types
from typing import Any

from ipytui.kernel.worker.magics.args import parse_args, split
from ipytui.kernel.worker.magics.registry import ArgumentError, all_magics, line_magic

_INFO_WIDTH = 50


def _user_names(shell: Any) -> list[str]:
    return sorted(n for n in shell.user_ns if not n.startswith("_") and n not in shell.hidden)


def _describe(value: Any) -> str:
    """The Data/Info column of %whos: short enough for one line."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"shape {tuple(value.shape)}, dtype {value.dtype}"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"n={len(value)}"
    try:
        text = " ".join(repr(value).split())
    except Exception as exc:  # a broken __repr__ must not break %whos
        text = f"<repr failed: {type(exc).__name__}>"
    if isinstance(value, types.ModuleType) or len(text) <= _INFO_WIDTH:
        return text
    half = (_INFO_WIDTH - 5) // 2
    return f"{text[:half]}<...>{text[-half:]}"


@line_magic
def who(shell: Any, line: str) -> None:
    """%who [TYPE ...]

    List the variables you defined; with type names (`%who int str`) only those types.
    """
    wanted = set(split(line))
    names = [
        n for n in _user_names(shell) if not wanted or type(shell.user_ns[n]).__name__ in wanted
    ]
    if names:
        print("\t".join(names))
    elif wanted:
        print("No variables match your requested type.")
    else:
        print("Interactive namespace is empty.")


@line_magic
def whos(shell: Any, line: str) -> None:
    """%whos [TYPE ...]

    Like %who, as a table: variable, type and a short description of its value.
    """
    wanted = set(split(line))
    values = [(name, shell.user_ns[name]) for name in _user_names(shell)]
    rows = [
        (name, type(value).__name__, _describe(value))
        for name, value in values
        if not wanted or type(value).__name__ in wanted
    ]
    if not rows:
        print("Interactive namespace is empty." if not wanted else "No variables match your requested type.")
        return
    name_width = max(len("Variable"), *(len(r[0]) for r in rows)) + 3
    type_width = max(len("Type"), *(len(r[1]) for r in rows)) + 3
    header = f"{'Variable':<{name_width}}{'Type':<{type_width}}Data/Info"
    print(header)
    print("-" * (len(header) + 6))
    for name, type_name, info in rows:
        print(f"{name:<{name_width}}{type_name:<{type_width}}{info}")


@line_magic
def reset(shell: Any, line: str) -> None:
    """%reset [-f]

    Delete every variable you defined. Asks for confirmation unless -f is given;
    a client that cannot answer prompts needs -f.
    """
    options, rest = parse_args(line, "f")
    if rest:
        raise ArgumentError(f"unexpected argument {rest[0]!r}")
    if not options.get("f"):
        if not shell.allow_stdin:
            print("%reset asks for confirmation, but this client cannot answer prompts: "
                  "use `%reset -f`.")
            return
        answer = input("Once deleted, variables cannot be recovered. Proceed (y/[n])? ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing done.")
            return
    ns = shell.user_ns
    for name in [n for n in ns if n not in shell.hidden and not _is_dunder(n)]:
        del ns[name]
    if isinstance(ns.get("Out"), dict):
        ns["Out"].clear()


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


@line_magic
def lsmagic(shell: Any, line: str) -> None:
    """%lsmagic

    List the available line and cell magics.
    """
    magics = all_magics()
    print("Available line magics:")
    print("  ".join(f"%{name}" for name in sorted(magics["line"])))
    print("\nAvailable cell magics:")
    print("  ".join(f"%%{name}" for name in sorted(magics["cell"])))
    print("\nHelp on any of them: %name? (for example %timeit?).")
