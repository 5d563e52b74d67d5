"""Modules read without importing them: their top-level names, from a stub or the source.

Completion of code that has not run often needs a module the worker has not
loaded (``import xml.etree.ElementTree as ET; ET.froms``) or the declared
type of a function's result (``re.compile('x').fin``). jedi answers both by
parsing typeshed's stubs with parso, which costs seconds on a cold cache;
CPython's own `ast` parses the same stub in milliseconds. This module finds
the file jedi would read (the stub jedi ships for a standard-library module,
else the module's source found on ``sys.path`` without importing anything)
and indexes its top-level statements by name, evaluating the
``sys.version_info`` and ``sys.platform`` tests stubs are full of.

Nothing here runs a module's code. A file that is missing, too big or does
not parse gives None, and the caller leaves the question to jedi.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 1_000_000
"""Larger files are left to jedi (reading them would not be fast either)."""


@dataclass(frozen=True)
class ImportRef:
    """A name bound by an import: ``from module import name`` (name None: ``import module``)."""

    module: str
    name: str | None


@dataclass
class ModuleInfo:
    """The top-level names of one module file, each bound to the statement that binds it last.

    A function's overloads are kept together as a list of `ast.FunctionDef`.
    """

    name: str
    path: Path
    is_stub: bool
    is_package: bool
    symbols: dict[str, object] = field(default_factory=dict)
    exported: set[str] = field(default_factory=set)  # names a user of the module sees
    star_imports: list[str] = field(default_factory=list)


@functools.cache
def typeshed_stdlib() -> Path | None:
    """The standard-library stubs jedi ships (found without importing jedi), or None."""
    try:
        spec = importlib.util.find_spec("jedi")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "third_party" / "typeshed" / "stdlib"
    return path if path.is_dir() else None


def _stub_file(name: str) -> tuple[Path, bool] | None:
    root = typeshed_stdlib()
    if root is None or name.split(".")[0] not in sys.stdlib_module_names:
        return None
    base = root.joinpath(*name.split("."))
    if (base / "__init__.pyi").is_file():
        return base / "__init__.pyi", True
    if base.with_suffix(".pyi").is_file():
        return base.with_suffix(".pyi"), False
    return None


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """`name`'s spec, found package by package on sys.path without importing anything."""
    path: list[str] | None = None
    spec = None
    for i in range(name.count(".") + 1):
        try:
            spec = importlib.machinery.PathFinder.find_spec(
                ".".join(name.split(".")[: i + 1]), path
            )
        except (ImportError, ValueError, OSError):
            return None
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
    return spec


def _source_file(name: str) -> tuple[Path, bool] | None:
    """The module's .pyi or .py on sys.path."""
    spec = _find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None  # namespace packages and extension modules: jedi's job
    origin = Path(spec.origin)
    stub = origin.with_suffix(".pyi")
    return (stub if stub.is_file() else origin), spec.submodule_search_locations is not None


def package_submodules(name: str) -> set[str] | None:
    """Submodule names of package `name` from its directories and its stubs, nothing imported;
    None when `name` is not a package found on sys.path."""
    spec = _find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return None
    try:
        names = {m.name for m in pkgutil.iter_modules(list(spec.submodule_search_locations))}
    except Exception:
        return None
    info = module_info(name)
    return names | (submodule_names(info) if info is not None else set())


def module_file(name: str) -> tuple[Path, bool] | None:
    """(file, is_package) jedi would read for module `name`: the stub, else the source."""
    return _stub_file(name) or _source_file(name)


MAX_CACHED_SOURCE_BYTES = 600_000
"""Source bytes whose parsed trees are kept: a tree takes ~45 times its source, so ~25 MiB
at most (the benchmark corpus reads 13 files, 0.2 MB). Past it every cache of parsed
declarations is dropped and refilled on demand."""

_parsed_bytes = 0
on_forget: list[Callable[[], None]] = []
"""Callbacks that drop caches holding parsed trees (called with `module_info`'s own)."""


def forget_parsed() -> None:
    """Drop every parsed tree (they are parsed again when next asked for)."""
    global _parsed_bytes
    _parsed_bytes = 0
    module_info.cache_clear()
    for clear in on_forget:
        clear()


@functools.cache
def module_info(name: str) -> ModuleInfo | None:
    """The indexed top-level names of module `name`, or None when it cannot be read."""
    global _parsed_bytes
    found = module_file(name)
    if found is None:
        return None
    path, is_package = found
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None
        if _parsed_bytes + size > MAX_CACHED_SOURCE_BYTES:
            forget_parsed()  # this call's result is cached afresh, alone
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None
    _parsed_bytes += size
    info = ModuleInfo(name, path, path.suffix == ".pyi", is_package)
    package = name if is_package else name.rpartition(".")[0]
    index_body(tree.body, info, package)
    _read_all(info)
    return info


def index_body(body: list[ast.stmt], info: ModuleInfo, package: str) -> None:
    """Bind every name `body` binds in `info`, taking the branches of `if` tests that hold."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            truth = condition(stmt.test)
            if truth is not False:
                index_body(stmt.body, info, package)
            if truth is not True:
                index_body(stmt.orelse, info, package)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                index_body(block, info, package)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _bind_function(info, stmt)
        elif isinstance(stmt, ast.ClassDef):
            _bind(info, stmt.name, stmt, True)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    _bind(info, target.id, stmt, True)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    _bind(
                        info, alias.asname, ImportRef(alias.name, None), alias.asname == alias.name
                    )
                else:
                    head = alias.name.split(".")[0]
                    _bind(info, head, ImportRef(head, None), False)
        elif isinstance(stmt, ast.ImportFrom):
            _bind_from(info, stmt, package)


def _bind(info: ModuleInfo, name: str, value: object, exported: bool) -> None:
    info.symbols[name] = value
    if exported or not info.is_stub:
        info.exported.add(name)  # a stub re-exports only `import x as x` (PEP 484)
    else:
        info.exported.discard(name)


def _bind_function(info: ModuleInfo, stmt: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    current = info.symbols.get(stmt.name)
    overload = any(_decorator_name(d) == "overload" for d in stmt.decorator_list)
    if overload and isinstance(current, list):
        current.append(stmt)
    else:
        _bind(info, stmt.name, [stmt], True)


def _bind_from(info: ModuleInfo, stmt: ast.ImportFrom, package: str) -> None:
    module = stmt.module or ""
    if stmt.level:
        parts = package.split(".")
        if stmt.level - 1 > len(parts):
            return
        base = ".".join(parts[: len(parts) - (stmt.level - 1)])
        module = f"{base}.{module}".strip(".")
    for alias in stmt.names:
        if alias.name == "*":
            info.star_imports.append(module)
            continue
        bound = alias.asname or alias.name
        _bind(info, bound, ImportRef(module, alias.name), alias.asname == alias.name)


def _read_all(info: ModuleInfo) -> None:
    """A module's ``__all__`` list, where it is a literal, says what it exports."""
    value = info.symbols.get("__all__")
    if isinstance(value, (ast.Assign, ast.AnnAssign)) and isinstance(
        value.value, (ast.List, ast.Tuple)
    ):
        names = {
            e.value
            for e in value.value.elts
            if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
        info.exported |= names & set(info.symbols)


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    """The last part of each decorator's name (``functools.cache`` -> ``cache``)."""
    return {_decorator_name(d) for d in node.decorator_list}


def condition(test: ast.expr) -> bool | None:
    """The value of a stub's ``if`` test on this interpreter, None when it is not a known test."""
    if isinstance(test, ast.BoolOp):
        values = [condition(v) for v in test.values]
        if isinstance(test.op, ast.And):
            return False if False in values else (True if all(values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = condition(test.operand)
        return None if inner is None else not inner
    if (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Attribute)
        and ast.unparse(test.func.value) == "sys.platform"
        and test.func.attr == "startswith"
        and len(test.args) == 1
        and isinstance(test.args[0], ast.Constant)
    ):
        return sys.platform.startswith(test.args[0].value)
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    subject = ast.unparse(test.left)
    try:
        other = ast.literal_eval(test.comparators[0])
    except (ValueError, SyntaxError, TypeError):
        return None
    actual: object = {"sys.version_info": sys.version_info[:2], "sys.platform": sys.platform}.get(
        subject
    )
    if actual is None:
        return None
    if isinstance(other, tuple):
        actual = tuple(sys.version_info[: len(other)])
    ops = {
        ast.GtE: lambda a, b: a >= b,
        ast.Gt: lambda a, b: a > b,
        ast.Lt: lambda a, b: a < b,
        ast.LtE: lambda a, b: a <= b,
        ast.Eq: lambda a, b: a == b,
        ast.NotEq: lambda a, b: a != b,
    }
    op = ops.get(type(test.ops[0]))
    try:
        return None if op is None else bool(op(actual, other))
    except TypeError:
        return None


def submodule_names(info: ModuleInfo) -> set[str]:
    """Names of a package's submodules, listed from its directory (nothing imported)."""
    if not info.is_package:
        return set()
    names = set()
    try:
        for entry in info.path.parent.iterdir():
            stem = entry.name.split(".")[0]
            if not stem.isidentifier() or stem in ("__pycache__", "__init__"):
                continue
            if entry.is_dir() or entry.suffix in (".py", ".pyi"):
                names.add(stem)
    except OSError:
        return set()
    return names
