"""What a class or function the code defines offers: its names, and the keywords a call takes.

Built on `completion_local` (which evaluates the code) for the two questions
a completion asks of a value after its type is known: which attribute names
it has (`local_listing`) and which ``name=`` arguments a call of it accepts
(`parameter_names`), for the code's own classes and functions and for those
the declarations (`completion_types`) describe.
"""

from __future__ import annotations

import ast

from ipytui.kernel.worker.completion_listing import listing, without_first
from ipytui.kernel.worker.completion_local import (
    MAX_DEPTH,
    LocalClass,
    LocalFunc,
    Value,
    class_bases,
    local_member,
    own_names,
)
from ipytui.kernel.worker.completion_stubs import decorator_names
from ipytui.kernel.worker.completion_types import ClassT, FuncT, function_defs, is_bound, member


def local_listing(cls: LocalClass, depth: int = 0) -> dict[str, tuple[str, str]] | None:
    """Names an instance (or the class) the code defines offers: (kind, signature) each."""
    if depth > MAX_DEPTH:
        return None
    found: dict[str, tuple[str, str]] = {}
    for name, (how, node) in own_names(cls).items():
        if how == "func":
            bound = "staticmethod" not in decorator_names(node)
            params = without_first(node.args) if bound else node.args
            found[name] = ("function", f"{name}({ast.unparse(params)})")
        else:
            found[name] = ("class" if how == "class" else "instance", "")
    for base in class_bases(cls, depth) or []:
        inherited = (
            local_listing(base, depth + 1) if isinstance(base, LocalClass) else listing(base)
        )
        if inherited is None:
            return None
        for name, entry in inherited.items():
            found.setdefault(name, entry)
    return found


def parameter_names(value: Value | None) -> list[str] | None:
    """Names a call of `value` takes as ``name=`` (None when not known)."""
    if isinstance(value, (LocalClass, ClassT)) and not value.instance:
        found: list[str] = []
        for method in ("__init__", "__new__"):
            if isinstance(value, LocalClass):
                bound = local_member(LocalClass(value.node, value.scope, True), method, 0)
            else:
                bound = member(value.as_instance(), method)
            names = parameter_names(bound) if bound is not None else []
            found += [n for n in names or [] if n not in found]
        return found
    if isinstance(value, LocalFunc):
        return _keyword_names(value.node.args, value.owner is not None)
    if isinstance(value, FuncT):
        defs = function_defs(value)
        if defs is None:
            return None
        found = []
        for fn in defs[1]:
            found += [n for n in _keyword_names(fn.args, is_bound(value, fn)) if n not in found]
        return found
    return None


def _keyword_names(args: ast.arguments, bound: bool) -> list[str]:
    plain = [a.arg for a in args.args]
    if bound and not args.posonlyargs and plain:
        plain.pop(0)
    return plain + [a.arg for a in args.kwonlyargs]
