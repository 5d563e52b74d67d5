"""Static reading of live objects for completion and inspection: no user code runs.

Attribute chains are walked with `inspect.getattr_static`; only C-level
descriptors (slots, getset descriptors, methods of builtin types) are
evaluated. Properties, Python descriptors and ``__getattr__`` are never run:
where a value could only be read by running them, the answer is `MISSING`.
The one exception is a class that defines a Python ``__dir__`` (pandas does,
to list column names): it is called, guarded, to list attribute names.
Signatures come from `inspect.signature` on functions and classes only, with
defaults that have a Python ``__repr__`` shown by type name. This is what lets
completion and inspection run on the listener thread beside a running cell.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import functools
import inspect
import re
import types
from collections.abc import Mapping
from typing import Any

MISSING: Any = object()
"""Returned by `static_getattr`/`resolve_dotted` when a value cannot be read safely."""

IDENT = r"[^\W\d]\w*"
"""Regex source of one Python identifier."""
_DOTTED_RE = re.compile(rf"{IDENT}(?:\.{IDENT})*")

_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    functools.partial,
)
_SAFE_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)


def _type_lookup(klass: type, name: str) -> Any:
    """`name` from the class dicts along `klass`'s MRO, without descriptors; MISSING if absent."""
    try:
        mro = type.__dict__["__mro__"].__get__(klass)
    except Exception:
        return MISSING
    for base in mro:
        attrs = type.__dict__["__dict__"].__get__(base)
        if name in attrs:
            return attrs[name]
    return MISSING


def _instance_dict(obj: object) -> dict:
    """obj.__dict__ when it is a plain C-level slot (never a Python property)."""
    slot = _type_lookup(type(obj), "__dict__")
    if not isinstance(slot, _SAFE_DESCRIPTORS):
        return {}
    try:
        value = slot.__get__(obj, type(obj))
    except Exception:
        return {}
    return value if isinstance(value, dict) else {}


def _bind(raw: Any, instance: object, owner: type) -> Any:
    """What `owner`/`instance` attribute access would return for class attribute `raw`, or MISSING.

    Only binds what needs no Python code: functions, static/class methods and
    C-level descriptors. Properties and Python descriptors give MISSING.
    """
    kind = type(raw)
    if issubclass(kind, property):
        return raw if instance is None else MISSING
    if issubclass(kind, staticmethod):
        return raw.__func__
    if issubclass(kind, classmethod):
        return types.MethodType(raw.__func__, owner)
    if kind is types.FunctionType:
        return raw if instance is None else types.MethodType(raw, instance)
    getter = _type_lookup(kind, "__get__")
    if getter is MISSING:
        return raw
    if not isinstance(getter, types.WrapperDescriptorType):
        return MISSING
    try:
        return getter(raw, instance, owner)
    except Exception:
        return MISSING


def _on_class(klass: type, name: str) -> bool:
    return _type_lookup(klass, name) is not MISSING


def static_getattr(obj: object, name: str) -> Any:
    """``obj.name`` read without running Python-level code; MISSING when that is impossible."""
    try:
        raw = inspect.getattr_static(obj, name)
    except Exception:
        return MISSING
    own = _instance_dict(obj)
    if name in own and own[name] is raw:
        return raw
    if isinstance(obj, type) and _on_class(obj, name):
        return _bind(raw, None, obj)
    return _bind(raw, obj, type(obj))


def resolve_dotted(expr: str, namespace: Mapping) -> Any:
    """Value of a dotted name such as ``a.b.c`` from the namespace or builtins; MISSING if unknown."""
    if not _DOTTED_RE.fullmatch(expr):
        return MISSING
    first, *rest = expr.split(".")
    if first in namespace:
        obj = namespace[first]
    elif first in vars(builtins):
        obj = vars(builtins)[first]
    else:
        return MISSING
    for part in rest:
        obj = static_getattr(obj, part)
        if obj is MISSING:
            return MISSING
    return obj


def attribute_names(obj: object) -> set[str]:
    """Attribute names of `obj`, read from its own and its classes' dicts (plus a custom __dir__)."""
    names = {k for k in _instance_dict(obj) if isinstance(k, str)}
    klass = obj if isinstance(obj, type) else type(obj)
    with contextlib.suppress(Exception):
        for base in type.__dict__["__mro__"].__get__(klass):
            names.update(k for k in type.__dict__["__dict__"].__get__(base) if isinstance(k, str))
    custom_dir = _type_lookup(type(obj), "__dir__")
    if type(custom_dir) is types.FunctionType:
        with contextlib.suppress(Exception):
            names.update(n for n in dir(obj) if isinstance(n, str))
    return names


def kind_of(value: object) -> str:
    """Jupyter/jedi-style completion type of a live value."""
    t = type(value)
    if issubclass(t, types.ModuleType):
        return "module"
    if issubclass(t, type):
        return "class"
    if issubclass(t, _FUNCTION_TYPES):
        return "function"
    return "instance"


def signature_text(name: str, value: object) -> str:
    """``name(params)`` for a function or class, '' when there is none."""
    if kind_of(value) not in ("function", "class"):
        return ""
    return format_signature(name, value)


def format_signature(name: str, value: object) -> str:
    """``name(params)`` from inspect.signature, '' if it has none.

    Annotations that are strings (``from __future__ import annotations``) are
    shown unquoted, and defaults whose class has a Python-level ``__repr__``
    are shown by type name, so no user ``__repr__`` runs.
    """
    try:
        sig = inspect.signature(value)
        params = [
            p.replace(annotation=_as_text(p.annotation), default=_default_text(p.default))
            for p in sig.parameters.values()
        ]
        sig = sig.replace(parameters=params, return_annotation=_as_text(sig.return_annotation))
        return f"{name}{sig}"
    except Exception:
        return ""


class _Text:
    """Shows as its text in a signature (inspect formats annotations/defaults with repr)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _as_text(annotation: Any) -> Any:
    return _Text(annotation) if isinstance(annotation, str) else annotation


def _default_text(default: Any) -> Any:
    if default is inspect.Parameter.empty:
        return default
    if type(_type_lookup(type(default), "__repr__")) is not types.FunctionType:
        return default  # a C-level __repr__: no user code
    if isinstance(default, enum.Enum):
        return _Text(f"{type(default).__name__}.{_instance_dict(default).get('_name_', '?')}")
    return _Text(f"<{type(default).__name__}>")


def module_dict(module: object) -> dict:
    """A module's own attribute dict, read from its slot ({} for anything else)."""
    return _instance_dict(module) if isinstance(module, types.ModuleType) else {}
