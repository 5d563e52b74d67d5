"""Which cells can be replayed instead of forked: the undo log's admission test.

A restore point per cell costs a fork and the copy-on-write faults after it
(docs/protection.md). A cell that only rebinds names and changes a few
built-in containers through built-in operations runs no user code, reads no
clock, file or random source, and so does exactly the same thing when it is
run again on the same state. Such a cell takes no point: the supervisor logs
its code after the newest point, and a restore (crash or ``%undo``) wakes that
point and replays the logged cells (worker/replay.py).

The test is strict. It walks the cell's syntax with the *exact* type of every
value it touches, from the namespace before the cell, and accepts only:

- statements: ``name = expr`` (also several names, or a tuple of names from a
  tuple of the same length), ``name op= expr``, ``container[key] = expr``,
  ``del name`` / ``del container[key]``, ``container.method(args)`` for the
  methods in ``METHODS``, ``pass``;
- expressions: constants, names, tuple / list / set / dict displays,
  arithmetic, comparisons and ``and`` / ``or`` on numbers and strings, indexing of built-in
  sequences and dicts.

Every operation on an object of another type (a subclass included) could run
a ``__dunder__`` method of the user's, so it is refused; so are calls,
attribute reads, comprehensions, f-strings and imports. A dict or set is
changed only while all its keys are scalars (a hash collision with a key of
the user's type would call its ``__eq__``), and at most ``SCAN_LIMIT`` of
them. Anything refused simply takes a restore point, as before.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCAN_LIMIT = 1000  # keys of a dict or set checked before it may be changed
MAX_CODE = 2000  # characters: a logged cell travels to the supervisor and back

SCALARS: frozenset[type] = frozenset({int, float, complex, bool, str, bytes, type(None)})
NUMBERS: frozenset[type] = frozenset({int, float, complex, bool})
HASHABLE_KEYS: frozenset[type] = frozenset({int, float, bool, str, bytes, type(None)})

# The methods a logged cell may call for their effect, by receiver type, with the
# kinds of argument each takes ("any": a reference stored, "int", "key": a scalar key,
# "iter": a list, tuple or str that is iterated, "dict": a dict display of scalar keys).
METHODS: dict[type, dict[str, tuple[tuple[str, ...], ...]]] = {
    list: {
        "append": (("any",),),
        "extend": (("iter",),),
        "insert": (("int", "any"),),
        "pop": ((), ("int",)),
        "clear": ((),),
        "reverse": ((),),
    },
    dict: {
        "pop": (("key",), ("key", "any")),
        "popitem": ((),),
        "setdefault": (("key",), ("key", "any")),
        "update": (("dict",),),
        "clear": ((),),
    },
    set: {
        "add": (("key",),),
        "discard": (("key",),),
        "remove": (("key",),),
        "pop": ((),),
        "clear": ((),),
    },
}

# Methods whose result is None: a cell may end with one (nothing is displayed).
NONE_RESULTS = frozenset({"append", "extend", "insert", "clear", "reverse", "update", "add",
                          "discard", "remove"})

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_BITS = (ast.LShift, ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd)


class Refused(Exception):
    """The cell may do something a replay would not repeat exactly."""


@dataclass(frozen=True)
class Value:
    """What the test knows of a value: its exact type (None: unknown, a reference
    only), and the object itself when it existed before the cell."""

    type: type | None
    obj: Any = None
    fresh: bool = False  # built by a display in this cell (its keys were checked)


UNKNOWN = Value(None)


def replayable(source: str, namespace: Mapping[str, Any]) -> bool:
    """True if ``source`` can be logged and replayed instead of forked (module docstring)."""
    if len(source) > MAX_CODE:
        return False
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    if not tree.body:
        return False
    try:
        _Cell(namespace).run(tree.body)
    except (Refused, RecursionError):
        return False
    return True


def _returns_none(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in NONE_RESULTS)


class _Cell:
    """One walk over a cell's statements, in order, with the names it binds."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.bound: dict[str, Value | None] = {}  # names this cell (re)bound; None: deleted

    def run(self, body: list[ast.stmt]) -> None:
        last = body[-1]
        if isinstance(last, ast.Expr) and not _returns_none(last.value):
            # Its value is displayed: a repr is user code, and ``_`` changes.
            raise Refused("a last expression is displayed")
        for stmt in body:
            self.statement(stmt)

    # -- statements ---------------------------------------------------------------
    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Pass):
            return
        if isinstance(stmt, ast.Assign):
            value = self.expr(stmt.value)
            for target in stmt.targets:
                self.assign(target, value, stmt.value)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            before = self.name(stmt.target.id)
            self.bind(stmt.target.id, Value(self.binop(before, stmt.op, self.expr(stmt.value), True)))
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                self.delete(target)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self.method_call(stmt.value)
        else:
            raise Refused(type(stmt).__name__)

    def assign(self, target: ast.expr, value: Value, node: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value)
        elif isinstance(target, ast.Subscript):
            self.change_item(target)
        elif isinstance(target, ast.Tuple | ast.List) and isinstance(node, ast.Tuple | ast.List):
            if len(target.elts) != len(node.elts) or not all(
                isinstance(t, ast.Name) for t in target.elts
            ):
                raise Refused("unpacking")
            values = [self.expr(v) for v in node.elts]  # all read before any is bound
            for t, v in zip(target.elts, values, strict=True):
                self.bind(t.id, v)  # type: ignore[attr-defined]
        else:
            raise Refused("assignment target")

    def delete(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.name(target.id)
            self.bound[target.id] = None
        elif isinstance(target, ast.Subscript):
            self.change_item(target)
        else:
            raise Refused("del target")

    def change_item(self, target: ast.Subscript) -> None:
        """``c[k] = v`` or ``del c[k]`` on a list (int index) or a dict (scalar key)."""
        container = self.expr(target.value)
        key = self.expr(target.slice)
        if container.type is list and key.type in (int, bool):
            return
        if container.type is dict and key.type in HASHABLE_KEYS:
            self.scan_keys(container)
            return
        raise Refused("item assignment")

    def method_call(self, call: ast.Call) -> None:
        func = call.func
        if call.keywords or not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
            raise Refused("call")
        receiver = self.name(func.value.id)
        signatures = METHODS.get(receiver.type, {}).get(func.attr) if receiver.type else None
        if signatures is None:
            raise Refused("method")
        args = [self.expr(a) for a in call.args]
        if any(isinstance(a, ast.Starred) for a in call.args):
            raise Refused("starred")
        kinds = next((s for s in signatures if len(s) == len(args)), None)
        if kinds is None:
            raise Refused("arguments")
        for kind, arg, node in zip(kinds, args, call.args, strict=True):
            self.check_argument(kind, arg, node)
        if "key" in kinds or "dict" in kinds:  # it hashes a key into the receiver
            self.scan_keys(receiver)

    def check_argument(self, kind: str, arg: Value, node: ast.expr) -> None:
        ok = {
            "any": True,
            "int": arg.type in (int, bool),
            "key": arg.type in HASHABLE_KEYS,
            "iter": arg.type in (list, tuple, str, bytes),
            "dict": isinstance(node, ast.Dict),
        }[kind]
        if not ok:
            raise Refused(f"argument ({kind})")

    def scan_keys(self, container: Value) -> None:
        """A dict or set may be changed only while its keys are all scalars."""
        if container.fresh:
            return
        keys = container.obj
        if keys is None or len(keys) > SCAN_LIMIT:
            raise Refused("keys not checked")
        if not all(type(k) in HASHABLE_KEYS for k in keys):
            raise Refused("a key of another type")

    # -- names --------------------------------------------------------------------
    def name(self, name: str) -> Value:
        if name in self.bound:
            value = self.bound[name]
            if value is None:
                raise Refused("deleted name")  # a NameError: the cell fails, nothing to log
            return value
        if name not in self.namespace:
            raise Refused("a builtin or an unknown name")
        obj = self.namespace[name]
        return Value(type(obj), obj)

    def bind(self, name: str, value: Value) -> None:
        """From here on ``name`` is ``value`` (an object from before keeps its ``obj``)."""
        self.bound[name] = value

    # -- expressions --------------------------------------------------------------
    def expr(self, node: ast.expr) -> Value:  # noqa: PLR0911 - one return per kind of node
        if isinstance(node, ast.Constant):
            if type(node.value) not in SCALARS:
                raise Refused("constant")
            return Value(type(node.value))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BinOp):
            return Value(self.binop(self.expr(node.left), node.op, self.expr(node.right)))
        if isinstance(node, ast.UnaryOp):
            return Value(self.unary(node.op, self.expr(node.operand)))
        if isinstance(node, ast.BoolOp):  # truth of built-in values only
            values = [self.expr(v) for v in node.values]
            if any(v.type not in SCALARS | {list, tuple, dict, set} for v in values):
                raise Refused("truth of an unknown value")
            kinds = {v.type for v in values}
            return Value(kinds.pop()) if len(kinds) == 1 else UNKNOWN
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                if self.expr(operand).type not in SCALARS:
                    raise Refused("comparison")
            if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
                raise Refused("membership")
            return Value(bool)
        if isinstance(node, ast.Tuple | ast.List):
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    raise Refused("starred")
                self.expr(elt)
            return Value(tuple if isinstance(node, ast.Tuple) else list, fresh=True)
        if isinstance(node, ast.Set):
            self.keys(node.elts)
            return Value(set, fresh=True)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise Refused("** in a dict display")
            self.keys([k for k in node.keys if k is not None])
            for v in node.values:
                self.expr(v)
            return Value(dict, fresh=True)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        raise Refused(type(node).__name__)

    def keys(self, nodes: list[ast.expr]) -> None:
        for key in nodes:
            if self.expr(key).type not in HASHABLE_KEYS:
                raise Refused("a key that is not a scalar")

    def subscript(self, node: ast.Subscript) -> Value:
        container = self.expr(node.value)
        kind = container.type
        if isinstance(node.slice, ast.Slice):
            for bound in (node.slice.lower, node.slice.upper, node.slice.step):
                if bound is not None and self.expr(bound).type not in (int, bool, type(None)):
                    raise Refused("slice bound")
            if kind in (list, tuple, str, bytes):
                return Value(kind, fresh=True)
            raise Refused("slice")
        key = self.expr(node.slice)
        if kind in (list, tuple) and key.type in (int, bool):
            return UNKNOWN
        if kind in (str, bytes) and key.type in (int, bool):
            return Value(str if kind is str else int)
        if kind is dict and key.type in HASHABLE_KEYS:
            self.scan_keys(container)
            return UNKNOWN
        raise Refused("subscript")

    def binop(self, left: Value, op: ast.operator, right: Value, inplace: bool = False) -> type:
        a, b = left.type, right.type
        if a in NUMBERS and b in NUMBERS and isinstance(op, _ARITHMETIC + _BITS):
            if isinstance(op, _BITS) and (float in (a, b) or complex in (a, b)):
                raise Refused("bits of a float")
            if complex in (a, b):
                return complex
            if float in (a, b) or isinstance(op, ast.Div):
                return float
            return int
        if isinstance(op, ast.Add) and a == b and a in (str, bytes, list, tuple):
            return a
        if isinstance(op, ast.Add) and inplace and a is list and b in (tuple, str, bytes):
            return list  # list += iterable extends it
        if isinstance(op, ast.Mult) and a in (str, bytes, list, tuple) and b in (int, bool):
            return a
        if isinstance(op, ast.Mult) and b in (str, bytes, list, tuple) and a in (int, bool):
            return b
        if isinstance(op, ast.Mod) and a in (str, bytes) and b in SCALARS:
            return a
        raise Refused("operands")

    def unary(self, op: ast.unaryop, operand: Value) -> type:
        if isinstance(op, ast.Not) and operand.type in SCALARS | {list, tuple, dict, set}:
            return bool
        if isinstance(op, ast.USub | ast.UAdd) and operand.type in NUMBERS:
            return int if operand.type is bool else operand.type
        if isinstance(op, ast.Invert) and operand.type in (int, bool):
            return int
        raise Refused("unary operand")
