"""The house rules, checked on the source: which process imports what.

The import graph is read statically from every module of the ``ipytui``
namespace (imports inside functions included, ``if TYPE_CHECKING:`` blocks
included), so neither a lazy import nor a type hint can hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def package_dirs(root: Path) -> dict[str, Path]:
    """``ipytui.*`` package name -> its folder, from pyproject's package-dir table."""
    table = tomllib.loads((root / "pyproject.toml").read_text())
    return {name: root / path for name, path in table["tool"]["setuptools"]["package-dir"].items()}


def modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module of the namespace: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in dirs.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str], *, typing_too: bool) -> set[str]:
    """The modules (of ``known``, or third-party roots) that ``name`` imports."""
    is_package = path.stem == "__init__"
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    if not typing_too:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names
                          if f"{target}.{alias.name}" in known}
            # ``from package import module`` depends on the module; the package's
            # own __init__ runs first for any of its modules anyway
            out.update(submodules or {target})
    resolved: set[str] = set()
    for target in out:
        if target in known or not target.startswith("ipytui"):
            resolved.add(target)
        else:  # ``ipytui.kernel.protocol.wire.Codec`` style: the longest known prefix
            parts = target.split(".")
            for cut in range(len(parts), 0, -1):
                if ".".join(parts[:cut]) in known:
                    resolved.add(".".join(parts[:cut]))
                    break
    resolved.discard(name)
    return resolved


def import_graph(root: Path, *, typing_too: bool = False) -> dict[str, set[str]]:
    found = modules(package_dirs(root))
    known = set(found)
    return {name: imports_of(name, path, known, typing_too=typing_too) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle among the graph's own modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def crossings(graph: dict[str, set[str]], source: str, forbidden: str) -> list[str]:
    """Imports from modules under ``source`` of modules under ``forbidden``."""
    def under(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    return sorted(f"{name} -> {target}" for name, targets in graph.items() if under(name, source)
                  for target in targets if under(target, forbidden))



FULL_GRAPH = import_graph(ROOT, typing_too=True)


def test_there_is_no_import_circle() -> None:
    assert find_cycle(FULL_GRAPH) is None


@pytest.mark.parametrize(("source", "forbidden"), [
    ("ipytui.kernel", "textual"),
    ("ipytui.kernel", "ipytui.app"),
    ("ipytui.kernel", "ipytui.widgets"),
    ("ipytui.kernel.worker", "ipytui.kernel.supervisor"),
    ("ipytui.kernel.supervisor", "ipytui.kernel.worker"),
    ("ipytui.kernel.worker", "ipytui.kernel.client"),
    ("ipytui.kernel.supervisor", "ipytui.kernel.client"),
    ("ipytui.kernel.engine", "ipytui.kernel.supervisor"),
    ("ipytui.kernel.engine", "ipytui.kernel.worker"),
    ("ipytui.kernel.engine", "ipytui.kernel.client"),
    ("ipytui.kernel.supervisor", "ipytui.kernel.engine"),
    ("ipytui.kernel.worker", "ipytui.kernel.engine"),
    ("ipytui.kernel.protocol", "ipytui.kernel.engine"),
    ("ipytui.kernel.protocol", "ipytui.kernel.supervisor"),
    ("ipytui.kernel.protocol", "ipytui.kernel.worker"),
    ("ipytui.kernel.protocol", "ipytui.kernel.client"),
    ("ipytui.kernel.protocol", "ipytui.kernel.tools"),
    ("ipytui.kernel.provision", "ipytui.kernel.supervisor"),
    ("ipytui.kernel.provision", "ipytui.kernel.worker"),
    ("ipytui.kernel.provision", "ipytui.kernel.client"),
    ("ipytui.kernel.provision", "ipytui.kernel.engine"),
    ("ipytui.kernel.supervisor", "ipytui.kernel.provision"),
    ("ipytui.kernel.worker", "ipytui.kernel.provision"),
    ("ipytui.kernel.protocol", "ipytui.kernel.provision"),
    ("ipytui.widgets", "zmq"),
    ("ipytui.widgets", "ipytui.kernel.client"),
])
def test_a_process_imports_only_what_it_runs(source: str, forbidden: str) -> None:
    assert crossings(FULL_GRAPH, source, forbidden) == []


def test_the_wire_codec_does_no_io() -> None:
    """The codec is bytes in, dicts out: no sockets, files or processes."""
    io_modules = {"zmq", "socket", "subprocess", "sqlite3", "pathlib", "shutil", "tempfile"}
    for name in ("ipytui.kernel.protocol.wire", "ipytui.kernel.protocol.signing",
                 "ipytui.kernel.protocol.pipeframe"):
        assert not {m.split(".")[0] for m in FULL_GRAPH[name]} & io_modules, name


def test_modules_stay_small() -> None:
    big = {name: len(path.read_text().splitlines())
           for name, path in modules(package_dirs(ROOT)).items()}
    assert {name: n for name, n in big.items() if n > MAX_LINES} == {}


def test_the_checker_finds_a_circle_that_is_added(tmp_path: Path) -> None:
    """The rules above can fail: a circle written into a copy of the layout is caught."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"ipytui.kernel.worker" = "w"\n"ipytui.kernel.supervisor" = "s"\n')
    (tmp_path / "w").mkdir()
    (tmp_path / "s").mkdir()
    (tmp_path / "w" / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "w" / "b.py").write_text("from ipytui.kernel.worker.a import f\n")
    (tmp_path / "s" / "c.py").write_text("import ipytui.kernel.worker.a\n")
    graph = import_graph(tmp_path, typing_too=True)
    assert find_cycle(graph) in (["ipytui.kernel.worker.a", "ipytui.kernel.worker.b",
                                  "ipytui.kernel.worker.a"],
                                 ["ipytui.kernel.worker.b", "ipytui.kernel.worker.a",
                                  "ipytui.kernel.worker.b"])
    assert crossings(graph, "ipytui.kernel.supervisor", "ipytui.kernel.worker") == [
        "ipytui.kernel.supervisor.c -> ipytui.kernel.worker.a"]
