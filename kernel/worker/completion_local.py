"""The type of a receiver in code that has not run, from the code itself and declarations.

`infer` evaluates the expression before ``.prefix`` statically: names the code
above binds (imports, assignments, ``for`` and ``with`` targets, its own
functions and classes), live names of the namespace, builtins, and, through
`completion_types`, what stubs declare about calls and attributes. A
function the code defines returns the one type all its ``return``
statements agree on; a class it defines offers its own names, those its
methods set on ``self``, and its bases'. Nothing runs; anything uncertain
is None, and jedi decides.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.worker.completion_listing import from_live
from ipytui.kernel.worker.completion_stubs import decorator_names
from ipytui.kernel.worker.completion_types import (
    ClassT,
    ModuleT,
    Type,
    annotation_type,
    call,
    member,
    module_member,
)

MAX_DEPTH = 20
"""Bound on the evaluation's recursion (a name bound to itself, long chains)."""

_DISPLAYS = {
    ast.List: "list",
    ast.ListComp: "list",
    ast.Dict: "dict",
    ast.DictComp: "dict",
    ast.Set: "set",
    ast.SetComp: "set",
    ast.Tuple: "tuple",
    ast.JoinedStr: "str",
}
_CLASS_DECORATORS = {"dataclass", "total_ordering", "final"}
"""Class decorators known to return the class they get (others may replace it)."""


@dataclass(frozen=True, eq=False)
class LocalFunc:
    """A function the code defines; `owner` is the instance it is bound to, if any."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    scope: Scope
    owner: LocalClass | None = None


@dataclass(frozen=True, eq=False)
class LocalClass:
    """A class the code defines (``instance``: an instance of it)."""

    node: ast.ClassDef
    scope: Scope
    instance: bool = False


Value = Type | LocalFunc | LocalClass


@dataclass(eq=False)
class Scope:
    """Names bound by code, each to (how, node), with the enclosing scope and the namespace."""

    ns: Mapping
    names: dict[str, tuple[str, Any]] = field(default_factory=dict)
    parent: Scope | None = None


def infer(node: ast.expr, before: str, indent: str, ns: Mapping) -> Value | None:
    """The type of expression `node`, with `before` the code above its line (indented by `indent`)."""
    try:
        return evaluate(node, code_scope(before, indent, ns), 0)
    except RecursionError:
        return None


def code_scope(before: str, indent: str, ns: Mapping) -> Scope:
    """The names `before` binds where the next line (indented by `indent`) starts."""
    for text in (before, f"{before}{indent}pass\n"):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        scope = Scope(ns)
        _bind_block(tree.body, scope, len(indent.expandtabs()))
        return scope
    return Scope(ns)


_KINDS = {"func": "function", "class": "class", "module": "module"}


def bound_names(before: str, indent: str) -> dict[str, str]:
    """Names the code above binds where the next line starts, each with its kind."""
    return {
        n: _KINDS.get(how, "instance")
        for n, (how, _) in code_scope(before, indent, {}).names.items()
    }


def _bind_block(body: list[ast.stmt], scope: Scope, column: int | None) -> None:
    """Bind what `body` binds; `column` is the cursor line's indentation when it follows
    `body` (a function it is indented into is where the cursor is), else None."""
    for i, stmt in enumerate(body):
        last = column is not None and i == len(body) - 1 and column > stmt.col_offset
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope.names[stmt.name] = ("func", stmt)
            if last:  # the cursor is in this function: its parameters and names are visible
                for arg in (*stmt.args.posonlyargs, *stmt.args.args, *stmt.args.kwonlyargs):
                    scope.names[arg.arg] = ("ann", arg.annotation)
                _bind_block(stmt.body, scope, column)
        elif isinstance(stmt, ast.ClassDef):
            scope.names[stmt.name] = ("class", stmt)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    scope.names[target.id] = ("expr", stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            scope.names[stmt.target.id] = ("ann", stmt.annotation)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                bound = alias.asname or alias.name.split(".")[0]
                scope.names[bound] = ("module", alias.name if alias.asname else bound)
        elif isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
            for alias in stmt.names:
                if alias.name != "*":
                    scope.names[alias.asname or alias.name] = ("from", (stmt.module, alias.name))
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            if isinstance(stmt.target, ast.Name):
                scope.names[stmt.target.id] = ("iter", stmt.iter)
            _bind_nested(stmt, scope, column if last else None)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if isinstance(item.optional_vars, ast.Name):
                    scope.names[item.optional_vars.id] = ("enter", item.context_expr)
            _bind_nested(stmt, scope, column if last else None)
        elif isinstance(stmt, (ast.If, ast.While, ast.Try)):
            _bind_nested(stmt, scope, column if last else None)


def _bind_nested(stmt: ast.stmt, scope: Scope, column: int | None) -> None:
    blocks = [getattr(stmt, name, []) for name in ("body", "orelse", "finalbody")]
    blocks[1:1] = [h.body for h in getattr(stmt, "handlers", [])]
    for block in blocks:
        _bind_block(block, scope, column)


# ---------------------------------------------------------------- evaluation


def iterated(t: Type) -> Type | None:
    """The type of the items ``for x in t`` gives, when ``__iter__`` declares one class."""
    method = member(t, "__iter__")
    if method is None:
        return None
    result = call(method, ast.Call(func=ast.Name("_"), args=[], keywords=[]))
    if isinstance(result, ClassT) and len(result.args) == 1 and result.args[0] is not None:
        return result.args[0]
    return None


def entered(t: Type) -> Type | None:
    """The type ``with t as x`` binds to x (what ``__enter__`` returns)."""
    method = member(t, "__enter__")
    if method is None:
        return None
    return call(method, ast.Call(func=ast.Name("_"), args=[], keywords=[]))


def evaluate(node: ast.expr, scope: Scope, depth: int) -> Value | None:
    """The type `node` has in `scope`, or None when it is not certain."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, ast.Constant):
        return from_live(node.value)
    for shape, name in _DISPLAYS.items():
        if isinstance(node, shape):
            return ClassT("builtins", name)
    if isinstance(node, ast.Name):
        return _name(node.id, scope, depth)
    if isinstance(node, ast.Attribute):
        base = evaluate(node.value, scope, depth + 1)
        if isinstance(base, LocalClass):
            return local_member(base, node.attr, depth)
        return (
            member(base, node.attr)
            if base is not None and not isinstance(base, LocalFunc)
            else None
        )
    if isinstance(node, ast.Call):
        callee = evaluate(node.func, scope, depth + 1)
        if isinstance(callee, LocalFunc):
            return _returns(callee, depth)
        if isinstance(callee, LocalClass):
            return LocalClass(callee.node, callee.scope, True) if not callee.instance else None
        return call(callee, node) if callee is not None else None
    return None


def _name(name: str, scope: Scope | None, depth: int) -> Value | None:
    while scope is not None:
        if name in scope.names:
            how, node = scope.names[name]
            return _binding(how, node, scope, depth + 1)
        if scope.parent is None and name in scope.ns:
            return from_live(scope.ns[name])
        scope = scope.parent
    return module_member("builtins", name)


def _binding(how: str, node: Any, scope: Scope, depth: int) -> Value | None:
    if how == "self":
        return node
    if how == "func":
        return LocalFunc(node, scope)
    if how == "class":
        return _local_class(node, scope, depth)
    if how == "module":
        return ModuleT(node)
    if how == "from":
        return module_member(*node)
    if how == "ann":
        return _annotation(node, scope, depth)
    value = evaluate(node, scope, depth)
    if how == "expr":
        return value
    if value is None or isinstance(value, (LocalFunc, LocalClass)):
        return None
    return iterated(value) if how == "iter" else entered(value)


def _annotation(node: ast.expr | None, scope: Scope, depth: int) -> Value | None:
    """An annotation in the code: a class it defines or imports, or a builtin one."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.Subscript):
        node = node.value
    if not isinstance(node, (ast.Name, ast.Attribute)):
        return annotation_type(node, "builtins", None)
    cls = evaluate(node, scope, depth + 1)
    if isinstance(cls, LocalClass) and not cls.instance:
        return LocalClass(cls.node, cls.scope, True)
    if isinstance(cls, ClassT) and not cls.instance:
        return cls.as_instance()
    return None


def _local_class(node: ast.ClassDef, scope: Scope, depth: int) -> LocalClass | None:
    if node.keywords or decorator_names(node) - _CLASS_DECORATORS:
        return None  # a metaclass or decorator may change what the class is
    if class_bases(LocalClass(node, scope), depth) is None:
        return None
    return LocalClass(node, scope)


def class_bases(cls: LocalClass, depth: int) -> list[Value] | None:
    bases: list[Value] = []
    for base in cls.node.bases:
        value = evaluate(
            base.value if isinstance(base, ast.Subscript) else base, cls.scope, depth + 1
        )
        if not (isinstance(value, (ClassT, LocalClass)) and not value.instance):
            return None
        bases.append(value)
    return bases or [ClassT("builtins", "object", False)]


def own_names(cls: LocalClass) -> dict[str, tuple[str, Any]]:
    """Names the class body binds, and attributes its methods set on ``self``."""
    body = Scope(cls.scope.ns, parent=cls.scope)
    _bind_block(cls.node.body, body, None)
    found = dict(body.names)
    for fn in cls.node.body:
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or not fn.args.args:
            continue
        me = fn.args.args[0].arg
        for stmt in ast.walk(fn):
            targets = (
                stmt.targets
                if isinstance(stmt, ast.Assign)
                else [stmt.target]
                if isinstance(stmt, (ast.AnnAssign, ast.AugAssign))
                else []
            )
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == me
                ):
                    found.setdefault(t.attr, ("attr", None))
    return found


def local_member(cls: LocalClass, name: str, depth: int) -> Value | None:
    own = own_names(cls)
    if name in own:
        how, node = own[name]
        if how == "func":
            return LocalFunc(node, cls.scope, cls if cls.instance else None)
        return None if how == "attr" else _binding(how, node, cls.scope, depth + 1)
    for base in class_bases(cls, depth) or []:
        found = (
            local_member(LocalClass(base.node, base.scope, cls.instance), name, depth + 1)
            if isinstance(base, LocalClass)
            else member(base.as_instance() if cls.instance else base, name)
        )
        if found is not None:
            return found
    return None


def _returns(fn: LocalFunc, depth: int) -> Value | None:
    """The type a call of `fn` returns: its annotation, else what all its returns agree on."""
    inner = Scope(fn.scope.ns, parent=fn.scope)
    _bind_block(fn.node.body, inner, None)
    for arg in (*fn.node.args.posonlyargs, *fn.node.args.args, *fn.node.args.kwonlyargs):
        inner.names[arg.arg] = ("ann", arg.annotation)
    if fn.owner is not None and fn.node.args.args:
        inner.names[fn.node.args.args[0].arg] = ("self", fn.owner)
    if fn.node.returns is not None:
        return _annotation(fn.node.returns, fn.scope, depth)
    if isinstance(fn.node, ast.AsyncFunctionDef) or _yields(fn.node):
        return None
    values = [r.value for r in _own_returns(fn.node)]
    if not values or any(v is None for v in values):
        return None
    types = [evaluate(v, inner, depth + 1) for v in values]
    first = types[0]
    return first if first is not None and all(t == first for t in types) else None


def _own_returns(node: ast.AST) -> list[ast.Return]:
    """The return statements of a function, not of functions or classes nested in it."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Return):
            found.append(child)
        elif not isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            found.extend(_own_returns(child))
    return found


def _yields(node: ast.AST) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))
