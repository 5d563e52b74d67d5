"""Magics that run, load and write files."""

from __future__ import annotations

import builtins
import sys
import tokenize
import types
from pathlib import Path
from typing import Any

from ipytui.kernel.worker.magics.args import parse_args
from ipytui.kernel.worker.magics.registry import ArgumentError, UsageError, cell_magic, line_magic


def _read_source(name: str) -> tuple[Path, str]:
    path = Path(name).expanduser()
    if not path.is_file():
        raise UsageError(f"File `{name}` not found.")
    with tokenize.open(path) as f:  # honours a coding cookie
        return path, f.read()


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _exec_as_main(code: types.CodeType, ns: dict[str, Any], argv: list[str], folder: str,
                  module: types.ModuleType | None) -> None:
    """Execute with __main__, sys.argv and sys.path[0] as ``python FILE ARGS`` would."""
    saved_argv, saved_main = sys.argv, sys.modules.get("__main__")
    sys.argv = argv
    sys.path.insert(0, folder)
    if module is not None:
        sys.modules["__main__"] = module
    try:
        exec(code, ns)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(f"SystemExit: {exc.code}", file=sys.stderr)
    finally:
        sys.argv = saved_argv
        if folder in sys.path:
            sys.path.remove(folder)
        if module is not None and saved_main is not None:
            sys.modules["__main__"] = saved_main
        elif module is not None:
            sys.modules.pop("__main__", None)


@line_magic
def run(shell: Any, line: str) -> None:
    """%run [-i] FILE [ARGS ...]

    Run a Python file as __main__ with sys.argv = [FILE, ARGS...]; afterwards
    its names are in the interactive namespace. -i: run inside the interactive
    namespace, so the file sees your variables.
    """
    options, words = parse_args(line, "i", anywhere=False)
    if not words:
        raise ArgumentError("no file given")
    path, source = _read_source(words[0])
    code = compile(source, str(path), "exec")
    folder = str(path.resolve().parent)
    if options.get("i"):
        ns = shell.user_ns
        saved = {k: ns[k] for k in ("__name__", "__file__") if k in ns}
        ns.update(__name__="__main__", __file__=str(path))
        try:
            _exec_as_main(code, ns, words, folder, None)
        finally:
            ns.pop("__file__", None)
            ns.update(saved)
        return
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(path), __builtins__=builtins)
    try:
        _exec_as_main(code, module.__dict__, words, folder, module)
    finally:
        shell.user_ns.update({k: v for k, v in module.__dict__.items() if not _is_dunder(k)})


@line_magic
def load(shell: Any, line: str) -> None:
    """%load FILE

    Put the contents of FILE into the next input, to edit and run.
    """
    _, words = parse_args(line, "")
    if len(words) != 1:
        raise ArgumentError("expected one file name")
    _, source = _read_source(words[0])
    shell.set_next_input(f"# %load {words[0]}\n{source}")


@cell_magic
def writefile(shell: Any, line: str, cell: str) -> None:
    """%%writefile [-a] FILE

    Write the cell body to FILE; -a appends instead of overwriting.
    """
    options, words = parse_args(line, "a", ("append",))
    if len(words) != 1:
        raise ArgumentError("expected one file name")
    path = Path(words[0]).expanduser()
    append = bool(options.get("a") or options.get("append"))
    verb = "Appending to" if append else "Overwriting" if path.exists() else "Writing"
    try:
        with path.open("a" if append else "w", encoding="utf-8") as f:
            f.write(cell)
    except OSError as exc:
        raise UsageError(f"%%writefile: {exc.strerror}: {words[0]}") from None
    print(f"{verb} {words[0]}")
