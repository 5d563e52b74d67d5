"""What a declared type offers for completion, and how live objects map to declared types.

`listing` gives the names a module or class (see `completion_types`) offers,
each with the kind and signature a frontend shows, from declarations alone.
`from_live` and `live_class` move between live objects and declared types
without running user code: class names are read through ``type``'s own
slots, never through ``getattr``.
"""

from __future__ import annotations

import ast
import sys
import types
from typing import Any

from ipytui.kernel.worker.completion_stubs import (
    ImportRef,
    ModuleInfo,
    decorator_names,
    module_info,
    submodule_names,
)
from ipytui.kernel.worker.completion_types import (
    PROPERTIES,
    ClassT,
    FuncT,
    ModuleT,
    Type,
    class_def,
    class_members,
    statement_type,
)
from ipytui.kernel.worker.static_attrs import MISSING, module_dict, resolve_dotted


def from_live(value: Any) -> Type | None:
    """The declared type for a live object: its module, class, or the class of its instance."""
    if issubclass(type(value), types.ModuleType):
        name = module_dict(value).get("__name__")
        return ModuleT(name) if isinstance(name, str) else None
    is_class = issubclass(type(value), type)
    cls = value if is_class else type(value)
    try:
        module = type.__dict__["__module__"].__get__(cls)
        qual = type.__dict__["__qualname__"].__get__(cls)
    except Exception:
        return None
    if not isinstance(module, str) or not isinstance(qual, str):
        return None
    if class_def(ClassT(module, qual, False)) is None:
        return None
    return ClassT(module, qual, instance=not is_class)


def live_class(t: ClassT) -> type | None:
    """The loaded class `t` names, read statically (None when its module is not loaded)."""
    module = sys.modules.get(t.module)
    if module is None:
        return None
    value = resolve_dotted(f"m.{t.qual}", {"m": module})
    return value if value is not MISSING and issubclass(type(value), type) else None


def listing(t: Type) -> dict[str, tuple[str, str]] | None:
    """Names `t` offers, each with (kind, signature), read from declarations only."""
    if isinstance(t, ModuleT):
        info = module_info(t.name)
        if info is None:
            return None
        entries = {n: info.symbols[n] for n in info.exported if n in info.symbols}
        found = {n: _describe(info, s, n, None) for n, s in entries.items()}
        for star in info.star_imports:
            found.update(
                {n: k for n, k in (listing(ModuleT(star)) or {}).items() if n not in found}
            )
        for sub in submodule_names(info):
            found.setdefault(sub, ("module", ""))
        return found
    if isinstance(t, ClassT):
        members = class_members(t)
        if members is None:
            return None
        return {n: _describe(info, s, n, t) for n, (info, s) in members.items()}
    return None


def _describe(info: ModuleInfo, stmt: object, name: str, owner: ClassT | None) -> tuple[str, str]:
    if (
        isinstance(stmt, ImportRef)
        or isinstance(stmt, ast.Assign)
        and isinstance(stmt.value, (ast.Name, ast.Attribute))
    ):
        return _kind(statement_type(info, stmt, name, owner)), ""
    if isinstance(stmt, ast.ClassDef):
        return "class", ""
    if isinstance(stmt, list):
        fn = stmt[0]
        if owner is not None and decorator_names(fn) & PROPERTIES:
            return "property", ""
        params = fn.args
        if owner is not None and "staticmethod" not in decorator_names(fn):
            params = without_first(params)
        return "function", f"{name}({ast.unparse(params)})"
    return "instance", ""


def _kind(t: Type | None) -> str:
    if isinstance(t, ModuleT):
        return "module"
    if isinstance(t, FuncT):
        return "function"
    return "class" if isinstance(t, ClassT) and not t.instance else "instance"


def without_first(args: ast.arguments) -> ast.arguments:
    """`args` without the first parameter (the `self` or `cls` a bound call fills)."""
    posonly, plain = list(args.posonlyargs), list(args.args)
    if posonly:
        posonly.pop(0)
    elif plain:
        plain.pop(0)
    defaults = (
        args.defaults[len(args.defaults) - len(posonly) - len(plain) :] if args.defaults else []
    )
    return ast.arguments(
        posonlyargs=posonly,
        args=plain,
        vararg=args.vararg,
        kwonlyargs=args.kwonlyargs,
        kw_defaults=args.kw_defaults,
        kwarg=args.kwarg,
        defaults=defaults,
    )
