"""Declared types from stubs and sources, read with `ast`: what a call returns, what a class has.

The values here describe code that has not run: a module (`ModuleT`), a class
or an instance of one (`ClassT`, found by module and qualified name), and a
function with its overloads (`FuncT`). They come from the files
`completion_stubs` indexes, so ``datetime.datetime.now()`` is an instance of
``datetime`` because the stub says ``-> Self``, and ``open('f')`` a
``TextIOWrapper`` because only the first of its overloads accepts one
argument. Whenever the declarations do not give one certain class (a type
variable, a union, overloads that disagree), the answer is None: jedi decides.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

from ipytui.kernel.worker.completion_stubs import (
    ImportRef,
    ModuleInfo,
    decorator_names,
    index_body,
    module_info,
    on_forget,
)

MAX_DEPTH = 12
"""Bound on alias and import chains followed for one name."""

_SKIPPED_BASES = {"Generic", "Protocol", "object"}
PROPERTIES = {"property", "cached_property", "abstractproperty"}


SELF_ATTRIBUTE = object()
"""Stands for an attribute a method sets on ``self`` (its type is not read)."""


@dataclass(frozen=True)
class ModuleT:
    """A module, by its full name."""

    name: str


@dataclass(frozen=True)
class ClassT:
    """A class (``instance=False``) or an instance of it, found in `module` as `qual`.

    `args` are the type arguments when certain (``Iterator[str]``: (str,)).
    """

    module: str
    qual: str
    instance: bool = True
    args: tuple[ClassT | None, ...] = ()

    def as_instance(self) -> ClassT:
        return ClassT(self.module, self.qual, True, self.args)


@dataclass(frozen=True)
class FuncT:
    """A function of `module` (or a method of `owner`, bound to it), by name."""

    module: str
    name: str
    owner: ClassT | None = None


Type = ModuleT | ClassT | FuncT


# ---------------------------------------------------------------- lookup


def lookup(module: str, name: str, depth: int = 0) -> tuple[ModuleInfo, object] | None:
    """(file, statement) binding `name` in `module`, following imports; None if unknown."""
    info = module_info(module)
    if info is None or depth > MAX_DEPTH:
        return None
    value = info.symbols.get(name)
    if isinstance(value, ImportRef):
        if value.name is None:
            return info, value
        submodule = f"{value.module}.{value.name}"
        bound = value.module != module and name_is_bound(value)
        if not bound and module_info(submodule) is not None:  # `from . import path as _path`
            return info, ImportRef(submodule, None)
        return lookup(value.module, value.name, depth + 1)
    if value is None:
        for star in info.star_imports:
            found = lookup(star, name, depth + 1)
            if found is not None:
                return found
        if info.is_package and module_info(f"{module}.{name}") is not None:
            return info, ImportRef(f"{module}.{name}", None)
        return None
    return info, value


def name_is_bound(ref: ImportRef) -> bool:
    """Does ``ref.module``'s own file bind ``ref.name`` (else it names a submodule)?"""
    info = module_info(ref.module)
    return info is not None and (ref.name in info.symbols or bool(info.star_imports))


def module_member(module: str, name: str, depth: int = 0) -> Type | None:
    """The type of ``module.name``: a submodule, class, function or declared value."""
    found = lookup(module, name)
    if found is None:
        return None
    info, stmt = found
    return statement_type(info, stmt, name, None, depth)


def statement_type(
    info: ModuleInfo, stmt: object, name: str, owner: ClassT | None, depth: int = 0
) -> Type | None:
    """The type a statement binding `name` gives it (`owner`: the class whose body holds it)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(stmt, ImportRef):
        if stmt.name is None:
            return ModuleT(stmt.module)
        return module_member(stmt.module, stmt.name, depth + 1)
    if isinstance(stmt, ast.ClassDef):
        qual = (
            f"{owner.qual}.{stmt.name}"
            if owner is not None and owner.module == info.name
            else stmt.name
        )
        return ClassT(info.name, qual, instance=False)
    if isinstance(stmt, list):
        if owner is not None and decorator_names(stmt[0]) & PROPERTIES:
            return annotation_type(stmt[0].returns, info.name, owner)
        return FuncT(info.name, stmt[0].name, owner)  # an alias (`sha256 = openssl_sha256`) too
    if isinstance(stmt, ast.AnnAssign):
        return annotation_type(stmt.annotation, info.name, owner)
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, (ast.Name, ast.Attribute)):
        return expression_type(stmt.value, info.name, depth + 1)  # alias: `Pattern = re.Pattern`
    return None


def expression_type(node: ast.expr, module: str, depth: int = 0) -> Type | None:
    """The type a dotted name in `module`'s file refers to (a class, module or function)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, ast.Name):
        found = lookup(module, node.id)
        if found is None:
            found = lookup("builtins", node.id)
        return (
            None if found is None else statement_type(found[0], found[1], node.id, None, depth + 1)
        )
    if isinstance(node, ast.Attribute):
        base = expression_type(node.value, module, depth + 1)
        return member(base, node.attr) if base is not None else None
    return None


# ---------------------------------------------------------------- classes


@functools.cache
def class_def(cls: ClassT) -> tuple[ModuleInfo, ast.ClassDef] | None:
    """The ClassDef statement of `cls` and its file."""
    head, *rest = cls.qual.split(".")
    found = lookup(cls.module, head)
    if found is None or not isinstance(found[1], ast.ClassDef):
        return None
    info, node = found
    for part in rest:
        inner = _class_body(node).get(part)
        if not isinstance(inner, ast.ClassDef):
            return None
        node = inner
    return info, node


@functools.cache
def _class_body(node: ast.ClassDef) -> dict[str, object]:
    body = ModuleInfo("", None, False, False)  # type: ignore[arg-type]
    index_body(node.body, body, "")
    for fn in node.body:  # attributes the methods set on self (sources declare them so)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.args.args:
            me = fn.args.args[0].arg
            for stmt in ast.walk(fn):
                for target in getattr(stmt, "targets", None) or [getattr(stmt, "target", None)]:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == me
                    ):
                        body.symbols.setdefault(target.attr, SELF_ATTRIBUTE)
    return body.symbols


def mro(cls: ClassT) -> list[tuple[ModuleInfo, ast.ClassDef, ClassT]] | None:
    """`cls` and its bases as declared, depth first, with ``object`` last; None if unknown."""
    seen: list[tuple[ModuleInfo, ast.ClassDef, ClassT]] = []
    stack = [ClassT(cls.module, cls.qual, False)]
    while stack and len(seen) < 64:
        current = stack.pop(0)
        found = class_def(current)
        if found is None:
            if not seen:
                return None
            continue  # a base no file declares: jedi cannot read it either
        if any(c == current for _, _, c in seen):
            continue
        seen.append((*found, current))
        bases = []
        for base in found[1].bases:
            target = base.value if isinstance(base, ast.Subscript) else base
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in _SKIPPED_BASES:
                continue
            resolved = expression_type(target, found[0].name)
            if isinstance(resolved, ClassT):
                bases.append(ClassT(resolved.module, resolved.qual, False))
        stack[:0] = bases
    if not any(c.module == "builtins" and c.qual == "object" for _, _, c in seen):
        found = class_def(ClassT("builtins", "object", False))
        if found is not None:
            seen.append((*found, ClassT("builtins", "object", False)))
    return seen


def class_members(cls: ClassT) -> dict[str, tuple[ModuleInfo, object]] | None:
    """Every attribute name the class declares or inherits, with the declaring statement."""
    chain = mro(cls)
    if chain is None:
        return None
    members: dict[str, tuple[ModuleInfo, object]] = {}
    for info, node, _ in chain:
        for name, stmt in _class_body(node).items():
            members.setdefault(name, (info, stmt))
    return members


def member(t: Type, name: str) -> Type | None:
    """The type of ``t.name``."""
    if isinstance(t, ModuleT):
        return module_member(t.name, name)
    if isinstance(t, ClassT):
        members = class_members(t)
        if members is None or name not in members:
            return None
        info, stmt = members[name]
        return statement_type(info, stmt, name, t)
    return None


# ---------------------------------------------------------------- calls


def call(t: Type, node: ast.Call) -> Type | None:
    """What calling `t` as `node` does returns (a class gives an instance of it)."""
    if isinstance(t, ClassT) and not t.instance:
        return t.as_instance()
    found = function_defs(t) if isinstance(t, FuncT) else None
    if found is None:
        return None
    module, overloads = found
    results = [
        annotation_type(fn.returns, module, t.owner)
        for fn in overloads
        if accepts(fn.args, node, is_bound(t, fn))
    ]
    return _agree(results)


def function_defs(t: FuncT) -> tuple[str, list[ast.FunctionDef]] | None:
    """The module declaring `t` and its definitions (each overload)."""
    if t.owner is not None:
        members = class_members(t.owner)
        entry = members.get(t.name) if members else None
    else:
        entry = lookup(t.module, t.name)
    if entry is None or not isinstance(entry[1], list):
        return None
    return entry[0].name, entry[1]


def is_bound(t: FuncT, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Does a call of `t` fill `fn`'s first parameter itself (self or cls)?"""
    return t.owner is not None and "staticmethod" not in decorator_names(fn)


def _agree(results: list[Type | None]) -> Type | None:
    """The one type all overloads that fit give (type arguments kept only if equal too)."""
    if not results or any(r is None for r in results):
        return None
    first = results[0]
    if all(r == first for r in results):
        return first
    if isinstance(first, ClassT) and all(
        isinstance(r, ClassT)
        and (r.module, r.qual, r.instance) == (first.module, first.qual, first.instance)
        for r in results
    ):
        return ClassT(first.module, first.qual, first.instance)
    return None


def accepts(args: ast.arguments, node: ast.Call, bound: bool) -> bool:
    """Could a call with `node`'s argument shape bind to these parameters (types not checked)?"""
    if any(isinstance(a, ast.Starred) for a in node.args) or any(
        k.arg is None for k in node.keywords
    ):
        return True
    positional = [*args.posonlyargs, *args.args][1 if bound else 0 :]
    n_defaults = len(args.defaults)
    required = positional[: len(positional) - n_defaults] if n_defaults else positional
    if len(node.args) > len(positional) and args.vararg is None:
        return False
    names = {k.arg for k in node.keywords}
    named = {a.arg for a in (*args.args, *args.kwonlyargs)}
    if names - named and args.kwarg is None:
        return False
    for i, param in enumerate(required):
        if i >= len(node.args) and param.arg not in names:
            return False
    return all(
        default is not None or a.arg in names
        for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    )


def annotation_type(
    node: ast.expr | None, module: str, self_t: ClassT | None, depth: int = 0
) -> Type | None:
    """The instance type an annotation in `module`'s file declares, when it is one class."""
    if node is None or depth > MAX_DEPTH:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [s for s in (node.left, node.right) if not _is_none(s)]
        return annotation_type(sides[0], module, self_t, depth + 1) if len(sides) == 1 else None
    args: list[ast.expr] = []
    if isinstance(node, ast.Subscript):
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        node = node.value
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    if name == "Self":
        return self_t.as_instance() if self_t is not None else None
    if name == "LiteralString":
        return ClassT("builtins", "str")
    if name in ("Optional", "Union"):
        rest = [a for a in args if not _is_none(a)]
        return annotation_type(rest[0], module, self_t, depth + 1) if len(rest) == 1 else None
    if name == "type" and len(args) == 1:
        inner = annotation_type(args[0], module, self_t, depth + 1)
        return ClassT(inner.module, inner.qual, False) if isinstance(inner, ClassT) else None
    target = _alias_target(node, module)
    if target is not None:
        return annotation_type(target, module, self_t, depth + 1)
    resolved = expression_type(node, module)
    if not isinstance(resolved, ClassT) or resolved.instance:
        return None
    return ClassT(
        resolved.module,
        resolved.qual,
        True,
        tuple(_arg_type(a, module, self_t, depth) for a in args),
    )


def _arg_type(node: ast.expr, module: str, self_t: ClassT | None, depth: int) -> ClassT | None:
    t = annotation_type(node, module, self_t, depth + 1)
    return t if isinstance(t, ClassT) else None


def _alias_target(node: ast.expr, module: str) -> ast.expr | None:
    """The right side of a type alias (``_Path = str | PathLike[str]``) named by `node`."""
    if not isinstance(node, ast.Name):
        return None
    found = lookup(module, node.id)
    stmt = found[1] if found else None
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, (ast.BinOp, ast.Subscript)):
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and ast.unparse(stmt.annotation).endswith("TypeAlias"):
        return stmt.value
    return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


on_forget.extend((class_def.cache_clear, _class_body.cache_clear))
