"""Object introspection for the kernel worker: inspect_request replies and `obj?` pager text.

Objects are found by walking dotted names on the live namespace with
`static_attrs.resolve_dotted` (no calls, no properties), and by jedi (under the
completion budget) for anything that is not live yet. Like completion, this
only reads, so `inspect_request` may run on the listener thread while a cell
runs. The one difference between the two entry points is the "String form":
`inspect_request` never calls a Python-level ``__repr__`` (it may run beside a
cell), while `object_help` serves ``obj?`` inside the user's own cell and calls
``repr`` like a REPL would.
"""

from __future__ import annotations

import inspect
import re
import reprlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from ipytui.kernel.worker.completion import clamp_cursor, line_column, snapshot
from ipytui.kernel.worker.completion_names import open_call
from ipytui.kernel.worker.jedi_runner import run_jedi
from ipytui.kernel.worker.static_attrs import MISSING, format_signature, kind_of, resolve_dotted

SHORT_DOC_LINES = 20
"""Detail 0 shows whole docstrings up to this many lines, else paragraphs that fit."""
STRING_FORM_CHARS = 500
STRING_FORM_LINES = 10

_NAME_CHARS_AT_END = re.compile(r"[\w.]*\Z")
_DOTTED = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_WORD_START = re.compile(r"\w*")
_SAFE_REPR_TYPES = (int, float, complex, bool, str, bytes, bytearray, range, slice, type(None))
_CONTAINERS = (tuple, list, dict, set, frozenset, deque)


@dataclass
class Help:
    """What is known about one object, ready to render."""

    name: str
    type_name: str = ""
    string_form: str = ""
    signature: str = ""
    file: str = ""
    docstring: str = ""
    source: str = ""


# ---------------------------------------------------------------- public API


def inspect_request(code: str, cursor_pos: int, detail_level: int, namespace: dict) -> dict:
    """Jupyter inspect_reply content for the name at or before the cursor; never raises."""
    try:
        found = _find_help(code, clamp_cursor(code, cursor_pos), snapshot(namespace))
    except Exception:
        found = None
    if found is None:
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}
    detail = 1 if detail_level else 0
    data = {
        "text/plain": render(found, detail, markdown=False),
        "text/markdown": render(found, detail, markdown=True),
    }
    return {"status": "ok", "found": True, "data": data, "metadata": {}}


def object_help(expr: str, detail_level: int, namespace: dict) -> str | None:
    """Plain-text help for `obj?` (detail 0) and `obj??` (detail 1); None if `expr` is unknown."""
    try:
        expr = expr.strip()
        obj = resolve_dotted(expr, snapshot(namespace))
        if obj is not MISSING:
            found = help_for(expr, obj, call_repr=True)
        else:
            found = run_jedi(lambda: _jedi_help(expr, len(expr), snapshot(namespace)))
        return None if found is None else render(found, 1 if detail_level else 0, markdown=False)
    except Exception:
        return None


# ---------------------------------------------------------------- finding


def _find_help(code: str, cursor: int, ns: dict) -> Help | None:
    """Help for the first candidate name that is live, else jedi's view of it."""
    candidates = _candidates(code, cursor)
    for expr, _end in candidates:
        obj = resolve_dotted(expr, ns)
        if obj is not MISSING:
            return help_for(expr, obj, call_repr=False)
    if not candidates:
        return None
    _expr, end = candidates[0]
    return run_jedi(lambda: _jedi_help(code, end, ns))


def _candidates(code: str, cursor: int) -> list[tuple[str, int]]:
    """(dotted name, index of its end): the name at/before the cursor, then enclosing callees."""
    found = []
    word = _dotted_around(code, cursor)
    if word is not None:
        found.append(word)
    before = code[:cursor]
    while (paren := open_call(before, limit=len(before))) is not None:
        callee = _dotted_around(code, paren)
        if callee is not None:
            found.append(callee)
        before = before[:paren]
    return found


def _dotted_around(code: str, pos: int) -> tuple[str, int] | None:
    """The dotted name touching `pos` (cursor before, inside or just after it)."""
    left = _NAME_CHARS_AT_END.search(code, 0, pos).group()
    start = pos - len(left)
    expr = (left + _WORD_START.match(code, pos).group()).rstrip(".")
    if not _DOTTED.fullmatch(expr) or (start > 0 and code[start - 1] in ")]}'\""):
        return None  # attribute of a call result, subscript or literal: not a plain name
    return expr, start + len(expr)


# ---------------------------------------------------------------- live objects


def help_for(name: str, obj: object, *, call_repr: bool) -> Help:
    """Help for a live object; `call_repr` allows a Python-level __repr__ for the string form."""
    target = _code_object(obj)
    return Help(
        name=name,
        type_name=_type_name(obj),
        string_form=_string_form(obj, call_repr),
        signature=_signature(name.rpartition(".")[2], obj),
        file=_file(target),
        docstring=_docstring(obj),
        source=_source(target),
    )


def _code_object(obj: object) -> object | None:
    """What has a file and source: the object itself for modules, classes and functions."""
    if kind_of(obj) in ("module", "class", "function"):
        return obj
    return None


def _type_name(obj: object) -> str:
    t = type(obj)
    module = t.__module__ if isinstance(t.__module__, str) else ""
    return t.__qualname__ if module in ("builtins", "") else f"{module}.{t.__qualname__}"


def _signature(name: str, obj: object) -> str:
    if kind_of(obj) in ("function", "class") or callable(obj):
        return format_signature(name, obj)
    return ""


def _file(target: object | None) -> str:
    if target is None:
        return ""
    try:
        return inspect.getsourcefile(target) or inspect.getfile(target)
    except Exception:
        return ""


def _source(target: object | None) -> str:
    if target is None:
        return ""
    try:
        return inspect.getsource(target).rstrip()
    except Exception:
        return ""


def _docstring(obj: object) -> str:
    """Cleaned docstring; inherited ones for functions/classes, the class's for instances."""
    try:
        if kind_of(obj) != "instance":
            return inspect.getdoc(obj) or ""
        raw = inspect.getattr_static(obj, "__doc__", None)
        return inspect.cleandoc(raw) if isinstance(raw, str) else ""
    except Exception:
        return ""


class _SafeRepr(reprlib.Repr):
    """reprlib that never calls a Python-level __repr__ (those may run user code)."""

    def repr1(self, x: Any, level: int) -> str:
        if type(x) in _CONTAINERS:
            return super().repr1(x, level)
        return self.repr_instance(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        if type(x) in _SAFE_REPR_TYPES or kind_of(x) in ("function", "class", "module"):
            try:
                return reprlib.Repr.repr_instance(self, x, level)
            except Exception:
                pass
        return object.__repr__(x)


def _safe_repr() -> reprlib.Repr:
    r = _SafeRepr()
    r.maxstring = r.maxother = STRING_FORM_CHARS
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = r.maxfrozenset = r.maxdeque = 30
    return r


def _string_form(obj: object, call_repr: bool) -> str:
    try:
        text = repr(obj) if call_repr else _safe_repr().repr(obj)
    except Exception:
        text = object.__repr__(obj)
    lines = text.splitlines() or [""]
    text = "\n".join(lines[:STRING_FORM_LINES])
    if len(text) > STRING_FORM_CHARS or len(lines) > STRING_FORM_LINES:
        text = text[:STRING_FORM_CHARS] + " ..."
    return text


# ---------------------------------------------------------------- jedi


def _jedi_help(code: str, end: int, ns: dict) -> Help | None:
    """jedi's view of the name ending at `end` (runs on the jedi thread)."""
    import jedi

    line, column = line_column(code, end)
    names = jedi.Interpreter(code, [ns]).infer(line, column)
    if not names:
        return None
    name = names[0]
    signatures = name.get_signatures()
    path = name.module_path
    return Help(
        name=name.full_name or name.name,
        type_name=name.type,
        signature=signatures[0].to_string() if signatures else "",
        file=str(path) if path else "",
        docstring=name.docstring(raw=True),
        source=_jedi_source(name, code),
    )


def _jedi_source(name: Any, code: str) -> str:
    """The definition's source lines, from its file or, for names defined in `code`, from it."""
    try:
        start = name.get_definition_start_position()
        stop = name.get_definition_end_position()
        if not (start and stop):
            return ""
        path = name.module_path
        text = path.read_text(encoding="utf-8") if path else code
        lines = text.splitlines()
        return "\n".join(lines[start[0] - 1 : stop[0]]).rstrip()
    except Exception:
        return ""


# ---------------------------------------------------------------- rendering


def short_docstring(doc: str) -> str:
    """Whole docstrings up to SHORT_DOC_LINES lines; longer ones cut at a paragraph break."""
    lines = doc.splitlines()
    if len(lines) <= SHORT_DOC_LINES:
        return doc
    head = lines[:SHORT_DOC_LINES]
    breaks = [i for i, text in enumerate(head) if not text.strip()]
    cut = breaks[-1] if breaks else SHORT_DOC_LINES
    return "\n".join(head[:cut]).rstrip() + "\n[...]"


def render(h: Help, detail: int, *, markdown: bool) -> str:
    """Help as text: signature, type, string form, file, then docstring (detail 0) or source."""
    parts = []
    if h.signature:
        parts.append(_block("Signature", h.signature, markdown, "python", inline=True))
    for label, value in (("Type", h.type_name), ("String form", h.string_form), ("File", h.file)):
        if value:
            parts.append(_field(label, value, markdown))
    if detail and h.source:
        parts.append(_block("Source", h.source, markdown, "python"))
    elif h.docstring:
        doc = h.docstring if detail else short_docstring(h.docstring)
        parts.append(_block("Docstring", doc, markdown, ""))
    else:
        parts.append(_field("Docstring", "<no docstring>", markdown))
    return "\n\n".join(parts) if markdown else "\n".join(parts)


def _field(label: str, value: str, markdown: bool) -> str:
    """A one-line `label: value` (markdown: the value as code, so `<...>` reprs survive)."""
    if "\n" in value:
        return _block(label, value, markdown, "text")
    if markdown:
        return f"**{label}:** {_inline_code(value)}"
    return f"{label + ':':<12} {value}"


def _block(label: str, value: str, markdown: bool, language: str, inline: bool = False) -> str:
    """A labelled multi-line section; `language` fences it in markdown ('' = markdown text)."""
    if not markdown:
        if inline and "\n" not in value:
            return f"{label + ':':<12} {value}"
        return f"{label}:\n{value}"
    return f"**{label}:**\n\n{_fence(value, language) if language else value}"


def _inline_code(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fence(text: str, language: str) -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"
