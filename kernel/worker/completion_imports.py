"""Completion of import statements without jedi: module names and names in loaded modules.

``import pre``: top-level modules found on ``sys.path`` (read from the
directories, nothing is imported) and built-in modules. ``import a.b.pre``
and ``from a.b import pre``: submodules of ``a.b`` when ``a.b`` is already
loaded (its ``__path__`` is listed, again without importing), and for
``from`` also the names the loaded module defines. When the parent is not
loaded, its directories and its declarations (`completion_stubs`) are read
instead, again without running it; what cannot be found so is left to jedi.
"""

from __future__ import annotations

import contextlib
import pkgutil
import re
import sys
import time

from ipytui.kernel.worker.completion_listing import listing
from ipytui.kernel.worker.completion_names import Match, Result, describe, sort_key, visible
from ipytui.kernel.worker.completion_stubs import package_submodules
from ipytui.kernel.worker.completion_types import ModuleT
from ipytui.kernel.worker.static_attrs import module_dict

IMPORT_LINE_RE = re.compile(r"\s*(?:import|from)\s")
_FROM_IMPORT_RE = re.compile(r"\s*from\s+([\w.]+)\s+import\s+(?:\(\s*)?(?:[\w\s,]*,\s*)?(\w*)\Z")
_IMPORT_NAME_RE = re.compile(r"\s*(?:import|from)\s+(?:[\w.\s]*,\s*)?([\w.]*)\Z")

TOP_LEVEL_TTL_S = 30.0
"""How long the list of top-level modules is reused before sys.path is read again."""

_top_level: tuple[float, tuple[str, ...], frozenset[str]] = (0.0, (), frozenset())


def complete_import(line: str, cursor: int, loaded_only: bool = False) -> Result | None:
    """Matches for an import line, or None when only jedi can tell.

    `loaded_only` leaves the directories alone (the fallback when jedi failed).
    """
    m = _FROM_IMPORT_RE.match(line)
    if m is not None:
        module, prefix = m.group(1), m.group(2)
        loaded = sys.modules.get(module)
        if loaded is None:
            return _declared_from_import(module, prefix, cursor)
        names = {n: v for n, v in module_dict(loaded).items() if visible(n, prefix)}
        subs = [
            n for n in _submodules(module, loaded_only) if visible(n, prefix) and n not in names
        ]
        matches = describe(names) + [Match(n, "module") for n in subs]
        matches.sort(key=lambda match: sort_key(match.text))
        return Result(matches, cursor - len(prefix), cursor)
    m = _IMPORT_NAME_RE.match(line)
    if m is None:
        return None
    parent, _, prefix = m.group(1).rpartition(".")
    if parent and parent not in sys.modules:
        names = None if loaded_only else package_submodules(parent)  # read, not imported
        if names is None:
            return None
    else:
        names = _submodules(parent, loaded_only) if parent else _top_level_modules(loaded_only)
    matches = [Match(n, "module") for n in sorted(names, key=sort_key) if visible(n, prefix)]
    return Result(matches, cursor - len(prefix), cursor)


def _declared_from_import(module: str, prefix: str, cursor: int) -> Result | None:
    """``from module import pre`` for a module not loaded: its declared names and submodules."""
    declared = listing(ModuleT(module)) or {}
    for name in package_submodules(module) or ():
        declared.setdefault(name, ("module", ""))
    matches = [Match(n, kind, sig) for n, (kind, sig) in declared.items() if visible(n, prefix)]
    matches.sort(key=lambda match: sort_key(match.text))
    return Result(matches, cursor - len(prefix), cursor) if matches else None


def _submodules(parent: str, loaded_only: bool) -> set[str]:
    """Names of `parent`'s submodules: loaded ones, and those in its package directories."""
    lead = parent + "."
    names = {n[len(lead) :].split(".")[0] for n in list(sys.modules) if n.startswith(lead)}
    path = module_dict(sys.modules.get(parent)).get("__path__")
    if not loaded_only and path is not None:
        # an odd __path__ only loses the directory listing
        with contextlib.suppress(Exception):
            names.update(info.name for info in pkgutil.iter_modules(list(path)))
    return names


def _top_level_modules(loaded_only: bool) -> frozenset[str]:
    """Top-level module names: loaded, built in, and on sys.path (cached for a while)."""
    global _top_level
    known = {n.split(".")[0] for n in list(sys.modules)} | set(sys.builtin_module_names)
    if loaded_only:
        return frozenset(known)
    when, path, names = _top_level
    current = tuple(p for p in sys.path if isinstance(p, str))
    if path != current or time.monotonic() - when > TOP_LEVEL_TTL_S:
        names = frozenset(info.name for info in pkgutil.iter_modules(list(current)))
        _top_level = (time.monotonic(), current, names)
    return names | known
