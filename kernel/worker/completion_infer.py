"""Types the completion fast path can tell without jedi and without running anything.

For ``RECEIVER.prefix`` where the receiver has not run, the class it evaluates
to is certain in a few common shapes, and then its attributes are known:
- literals and displays: ``[1, 2]``, ``"x"``, ``{}``, ``(1,)``, ``{1}``,
  comprehensions, f-strings;
- a call of a live class whose metaclass is plain ``type`` (``dict(a=1)``,
  ``collections.Counter()``): an instance of it;
- a name the code assigned one of the above (``x = 'abc'``) or annotated as a
  live class in the enclosing ``def`` header (``def f(s: str):``).
Anything else (function calls, methods' results, unions) is jedi's job: the
answer here is None, never a guess.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Mapping
from typing import Any

from ipytui.kernel.worker.static_attrs import MISSING, resolve_dotted, static_getattr

MAX_RECEIVER = 300
"""Longest receiver text (characters) looked at; longer ones go to jedi."""

SAMPLES: dict[type, Any] = {
    t: t()
    for t in (list, dict, set, frozenset, tuple, str, bytes, bytearray, int, float, complex, bool)
}
"""Builtin types whose empty instance stands in for the real one (bound methods, no `self`)."""

_DISPLAYS: dict[type, type] = {
    ast.List: list,
    ast.ListComp: list,
    ast.Dict: dict,
    ast.DictComp: dict,
    ast.Set: set,
    ast.SetComp: set,
    ast.Tuple: tuple,
    ast.JoinedStr: str,
    ast.GeneratorExp: types.GeneratorType,
}
_PRIMARY = (
    ast.Constant,
    ast.List,
    ast.ListComp,
    ast.Dict,
    ast.DictComp,
    ast.Set,
    ast.SetComp,
    ast.JoinedStr,
    ast.Call,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Tuple,
    ast.GeneratorExp,
)
_DEF_RE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+\w+[ \t]*\((.*)\)[ \t]*(?:->.*)?:[ \t]*$")


def receiver_type(receiver: str, before: str, ns: Mapping, modules: Mapping) -> type | None:
    """The class of the expression that ends `receiver` (the text before ``.prefix``).

    `before` is the code before the receiver's line (for assignments and def
    headers); `modules` maps names the code imports to live modules.
    """
    node = trailing_expression(receiver[-MAX_RECEIVER:])
    if node is None:
        return None
    return _node_type(node, before, ns, modules)


def trailing_expression(text: str) -> ast.expr | None:
    """The longest primary expression (no operators) that ends `text`, parsed."""
    for i in range(len(text)):
        if i and (text[i - 1].isalnum() or text[i - 1] in "_.'\")]}"):
            continue  # it would continue the expression before it
        try:
            node = ast.parse(text[i:].strip(), mode="eval").body
        except (SyntaxError, ValueError):
            continue
        if isinstance(node, ast.Tuple) and not text[i:].lstrip().startswith("("):
            continue  # `a, [1]` is a tuple only as a whole
        if isinstance(node, _PRIMARY):
            return node
    return None


def _node_type(node: ast.expr, before: str, ns: Mapping, modules: Mapping) -> type | None:
    if isinstance(node, ast.Constant):
        return type(node.value)
    for shape, kind in _DISPLAYS.items():
        if isinstance(node, shape):
            return kind
    if isinstance(node, ast.Call):
        return _instance_of(_live(node.func, ns, modules))
    if isinstance(node, ast.Name) and node.id not in ns:
        value = _assigned(node.id, before)
        if value is not None and not (isinstance(value, ast.Name) and value.id == node.id):
            return _node_type(value, "", ns, modules)
        return _instance_of(_live(_annotation(node.id, before), ns, modules))
    return None


def _live(node: ast.expr | None, ns: Mapping, modules: Mapping) -> Any:
    """The live value of a dotted name (read statically), or MISSING."""
    if isinstance(node, ast.Subscript):
        node = node.value  # list[int] -> list
    if node is None or not isinstance(node, (ast.Name, ast.Attribute)):
        return MISSING
    dotted = ast.unparse(node)
    first = dotted.split(".")[0]
    scope = ns if first in ns or first not in modules else {first: modules[first]}
    return resolve_dotted(dotted, scope)


def _instance_of(cls: Any) -> type | None:
    """`cls` when calling it surely gives an instance of it (a plain class)."""
    if isinstance(cls, type) and type(cls) is type and cls is not type:
        return cls
    return None


def _assigned(name: str, before: str) -> ast.expr | None:
    """The value of the last plain ``name = value`` line in `before`."""
    pattern = re.compile(rf"^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]+)?=(?!=)(.+)$", re.M)
    for m in reversed(list(pattern.finditer(before))):
        try:
            return ast.parse(m.group(1).strip(), mode="eval").body
        except SyntaxError:
            continue
    return None


def _annotation(name: str, before: str) -> ast.expr | None:
    """The annotation of parameter `name` in the innermost one-line def header above."""
    lines = before.split("\n")
    indent = len(lines[-1]) - len(lines[-1].lstrip()) if lines else 0
    for line in reversed(lines[:-1]):
        m = _DEF_RE.match(line)
        if m is None or len(m.group(1)) >= max(indent, 1):
            continue
        try:
            header = ast.parse(f"def _({m.group(2)}): pass").body[0]
        except SyntaxError:
            return None
        args = header.args  # type: ignore[attr-defined]
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            if arg.arg == name:
                return _unquoted(arg.annotation)
        return None
    return None


def _unquoted(annotation: ast.expr | None) -> ast.expr | None:
    """A string annotation (``"Path"``) parsed; others as they are."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            return ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    return annotation


def instance_attributes(cls: type, names: set[str]) -> dict[str, Any]:
    """Attribute values an instance of `cls` would show, read without an instance.

    Builtin types use an empty sample instance; for other classes, functions
    are bound to a placeholder so their signatures leave out ``self``.
    """
    sample = SAMPLES.get(cls, MISSING)
    if sample is not MISSING:
        return {n: static_getattr(sample, n) for n in names}
    found = {}
    for n in names:
        value = static_getattr(cls, n)
        found[n] = (
            types.MethodType(value, _PLACEHOLDER)
            if isinstance(value, types.FunctionType)
            else value
        )
    return found


_PLACEHOLDER = object()
