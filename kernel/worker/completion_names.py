"""The completion fast path over live names: plain names, attributes and ``param=``.

Answers from the live namespace without jedi: namespace names, builtins and
keywords; attributes of a live dotted chain (read with `static_attrs`, so no
user code runs); and ``param=`` inside a call of a live callable. `Match` and
`Result`, the values every completion path builds, live here too because this
is the lowest of the completion modules (`completion_strings` and
`completion` build on it).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ipytui.kernel.worker.completion_infer import (
    MAX_RECEIVER,
    SAMPLES,
    instance_attributes,
    receiver_type,
    trailing_expression,
)
from ipytui.kernel.worker.completion_listing import listing, live_class
from ipytui.kernel.worker.completion_local import LocalClass, bound_names, infer
from ipytui.kernel.worker.completion_members import local_listing, parameter_names
from ipytui.kernel.worker.completion_types import ClassT, ModuleT
from ipytui.kernel.worker.static_attrs import (
    IDENT,
    MISSING,
    attribute_names,
    kind_of,
    resolve_dotted,
    signature_text,
    static_getattr,
)

MAX_SIGNATURES = 200
"""Compute signatures for at most this many matches (inspect/jedi cost per match)."""

TRAILING_DOTTED_RE = re.compile(rf"{IDENT}(?:\.{IDENT})*\Z")
"""A dotted name at the end of the text."""
_COMPLETION_RE = re.compile(rf"(?:{IDENT}\.)*(?:{IDENT})?\Z")
EXPR_END = ")]}'\"."
"""Characters that end an expression a name or subscript can hang off."""


@dataclass
class Match:
    """One completion: the replacement text plus what a UI shows next to it."""

    text: str
    type: str = ""
    signature: str = ""


@dataclass
class Result:
    """Matches and the range ``[start, end)`` of the code they replace."""

    matches: list[Match]
    start: int
    end: int
    final: bool = False  # jedi cannot do better, even when there are no matches


def complete_dotted(code: str, cursor: int, line: str, ns: dict) -> Result | None:
    """Plain names, or attributes of a live dotted chain (`obj.attr.pre`)."""
    m = _COMPLETION_RE.search(line)
    if m is None:
        return None
    *parents, prefix = m.group().split(".")
    start = cursor - len(prefix)
    head = line[: m.start()]
    if ends_expression(head):
        if parents or not head.endswith("."):
            return None
        return _complete_inferred(code, cursor, head[:-1], prefix, ns)
    if not parents:
        params = _call_params(code[:start], prefix, ns)
        if params is None:
            return None
        return Result(params + _code_names(code, start, prefix, ns), start, cursor)
    rebound = _names_bound_above(code, start).get(parents[0]) if parents[0] in ns else None
    if rebound is not None and not (rebound == "module" and isinstance(ns[parents[0]], ModuleType)):
        # the code rebinds a live name (``x = 'abc'`` over a live int): its binding wins
        return _complete_inferred(code, cursor, head + ".".join(parents), prefix, ns)
    obj = resolve_dotted(".".join(parents), ns)
    if obj is MISSING and parents[0] not in ns:
        imported = _imported_here(code[:start]).get(parents[0])
        if imported is not None:
            obj = resolve_dotted(".".join(parents), {parents[0]: imported})
        if obj is MISSING:  # not loaded yet (``import a.b`` of an unloaded b): declarations
            return _complete_inferred(code, cursor, head + ".".join(parents), prefix, ns)
    if obj is MISSING:
        return None
    found = {n: _attribute_value(obj, n) for n in attribute_names(obj) if visible(n, prefix)}
    return Result(describe(found), start, cursor, final=True)


def _complete_inferred(
    code: str, cursor: int, receiver: str, prefix: str, ns: dict
) -> Result | None:
    """Attributes of `receiver` (code that has not run) when its class is certain; else None."""
    start = cursor - len(prefix)
    before = code[: code.rfind("\n", 0, start) + 1]  # the lines above the receiver's
    cls = receiver_type(receiver, before, ns, _imported_here(before))
    if cls is None:
        return _complete_declared(receiver, before, prefix, ns, start, cursor)
    names = {n for n in attribute_names(SAMPLES.get(cls, cls)) if visible(n, prefix)}
    return Result(describe(instance_attributes(cls, names)), start, cursor, final=cls in SAMPLES)


def _complete_declared(
    receiver: str, before: str, prefix: str, ns: dict, start: int, cursor: int
) -> Result | None:
    """Attributes of `receiver` from what the code and the stubs declare (None: ask jedi)."""
    node = trailing_expression(receiver[-MAX_RECEIVER:])
    if node is None:
        return None
    indent = receiver[: len(receiver) - len(receiver.lstrip(" \t"))]
    value = infer(node, before, indent, ns)
    live = (
        live_class(value)
        if isinstance(value, ClassT)
        else sys.modules.get(value.name)
        if isinstance(value, ModuleT)
        else None
    )
    matches: list[Match] = []
    instance = isinstance(value, ClassT) and value.instance
    if isinstance(live, type) and instance:
        names = {n for n in attribute_names(SAMPLES.get(live, live)) if visible(n, prefix)}
        matches = describe(instance_attributes(live, names))
    elif live is not None:
        matches = describe(
            {n: _attribute_value(live, n) for n in attribute_names(live) if visible(n, prefix)}
        )
    if live is None or instance:
        # all declared names when nothing is loaded; beside a loaded class, the instance
        # attributes its __init__ sets (``returncode``), which the class does not hold
        declared = (
            local_listing(value)
            if isinstance(value, LocalClass)
            else listing(value)
            if isinstance(value, (ClassT, ModuleT))
            else None
        )
        known = {m.text for m in matches}
        matches += [
            Match(n, kind, sig)
            for n, (kind, sig) in (declared or {}).items()
            if visible(n, prefix) and n not in known
        ]
        matches.sort(key=lambda m: sort_key(m.text))
    return Result(matches, start, cursor) if matches else None


_PLAIN_IMPORT = re.compile(
    r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)[ \t]*$",
    re.M,
)


def _imported_here(code: str) -> dict[str, Any]:
    """Names the code's own ``import a.b`` / ``import a as b`` lines bind, for modules
    this process has imported already: their attributes are read live, without jedi."""
    names: dict[str, Any] = {}
    for line in _PLAIN_IMPORT.finditer(code):
        for item in line.group(1).split(","):
            module, *alias = item.split()[::2]  # "a.b" or "a.b as c" -> ["a.b"] / ["a.b", "c"]
            bound = alias[0] if alias else module.split(".")[0]
            value = sys.modules.get(module if alias else bound)
            if value is not None:
                names[bound] = value
    return names


def _attribute_value(obj: object, name: str) -> Any:
    """The attribute read statically; _PROPERTY or MISSING where reading would run code."""
    value = static_getattr(obj, name)
    if value is MISSING and issubclass(type(inspect.getattr_static(obj, name, None)), property):
        return _PROPERTY
    return value


_PROPERTY: Any = object()


def ends_expression(text: str) -> bool:
    """True when `text` ends in something a name would hang off (`f().`, `x[0].`, `1.`)."""
    last = text[-1:]
    return bool(last) and (last in EXPR_END or last.isalnum() or last == "_")


def visible(name: str, prefix: str) -> bool:
    """Does `name` complete `prefix`? Private names only once the user typed `_`."""
    return name.startswith(prefix) and (prefix.startswith("_") or not name.startswith("_"))


def sort_key(name: str) -> tuple[int, str]:
    return (name.startswith("__") + name.startswith("_"), name.lower())


def describe(found: Mapping[str, Any]) -> list[Match]:
    """Matches with type and signature for names bound to live values (MISSING: unread)."""
    matches = []
    for i, name in enumerate(sorted(found, key=sort_key)):
        value = found[name]
        if value is _PROPERTY or issubclass(type(value), property):
            matches.append(Match(name, "property"))
            continue
        if value is MISSING:
            matches.append(Match(name, "instance"))
            continue
        signature = signature_text(name, value) if i < MAX_SIGNATURES else ""
        matches.append(Match(name, kind_of(value), signature))
    return matches


def _names_bound_above(code: str, start: int) -> dict[str, str]:
    """Names the lines above `start`'s line bind where that line is, with their kinds."""
    line_start = code.rfind("\n", 0, start) + 1
    if line_start == 0:
        return {}
    line = code[line_start:start]
    return bound_names(code[:line_start], line[: len(line) - len(line.lstrip(" \t"))])


def _code_names(code: str, start: int, prefix: str, ns: dict) -> list[Match]:
    """`name_matches`, with the names the code above binds (it has not run yet) added."""
    matches = name_matches(prefix, ns)
    bound = _names_bound_above(code, start)
    if not bound:
        return matches
    known = {m.text for m in matches}
    extra = [Match(n, kind) for n, kind in bound.items() if visible(n, prefix) and n not in known]
    return sorted(matches + extra, key=lambda m: sort_key(m.text)) if extra else matches


def name_matches(prefix: str, ns: dict) -> list[Match]:
    """Namespace names, builtins and keywords starting with `prefix`."""
    found: dict[str, Any] = {}
    for source in (ns, vars(builtins)):
        for name, value in source.items():
            if isinstance(name, str) and visible(name, prefix):
                found.setdefault(name, value)
    words = [w for w in (*keyword.kwlist, *keyword.softkwlist) if w != "_" and w not in found]
    matches = describe(found)
    matches += [Match(w, "keyword") for w in words if visible(w, prefix)]
    matches.sort(key=lambda m: sort_key(m.text))
    return matches


def open_call(before: str, limit: int = 2000) -> int | None:
    """Index of the innermost unclosed '(' before the cursor (None: not inside a call)."""
    depth = 0
    for i in range(len(before) - 1, max(-1, len(before) - 1 - limit), -1):
        ch = before[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                return i if ch == "(" else None
            depth -= 1
    return None


def _declared_params(
    before_word: str, paren: int, callee: str, prefix: str, ns: dict
) -> list[Match] | None:
    """``param=`` for a callee that has not run: the code's own def, or a declared function."""
    line_start = before_word.rfind("\n", 0, paren) + 1
    line = before_word[line_start:paren]
    try:
        node = ast.parse(callee, mode="eval").body
    except SyntaxError:
        return None
    names = parameter_names(
        infer(node, before_word[:line_start], line[: len(line) - len(line.lstrip(" \t"))], ns)
    )
    if names is None:
        return None
    return [Match(f"{n}=", "param") for n in names if visible(n, prefix)]


def _call_params(before_word: str, prefix: str, ns: dict) -> list[Match] | None:
    """``param=`` matches when typing an argument of a live callable; None to ask jedi."""
    if not before_word.rstrip().endswith(("(", ",")):
        return []  # not where an argument name goes
    paren = open_call(before_word)
    if paren is None:
        return []
    head = before_word[:paren]
    m = TRAILING_DOTTED_RE.search(head)
    if m is None:
        return None if ends_expression(head) else []
    if ends_expression(head[: m.start()]):
        return None
    if keyword.iskeyword(m.group()):
        return []
    callee = resolve_dotted(m.group(), ns)
    if callee is MISSING:
        return _declared_params(before_word, paren, m.group(), prefix, ns)
    try:
        params = inspect.signature(callee).parameters.values()
    except Exception:
        return []
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        Match(f"{p.name}=", "param") for p in params if p.kind in named and visible(p.name, prefix)
    ]
