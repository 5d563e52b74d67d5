"""Tab completion for the kernel worker: a fast live-namespace path, then jedi under a budget.

`complete()` builds a Jupyter ``complete_reply`` content and never raises.

Order of work:
1. A fast path answers from the live namespace without jedi: plain names
   (namespace, builtins, keywords, and ``param=`` inside a call of a live
   callable), dotted attributes of live objects, dict keys and file paths
   inside string literals.
2. Anything the fast path cannot answer (imports, attributes of call results,
   names not yet executed...) goes to ``jedi.Interpreter`` on a helper thread,
   under a time budget of `JEDI_BUDGET_S` seconds.
3. If jedi is slow, busy or fails, a plain answer is built from the namespace.

Why this may run on the worker's listener thread while a cell runs on the main
thread: completion only *reads*.
- The namespace is snapshotted with ``dict(namespace)``, a single C-level copy
  under the GIL, so a cell adding names concurrently cannot break iteration.
- The fast path does not call user code. Attribute chains are walked with
  `inspect.getattr_static`; only C-level descriptors (slots, getset
  descriptors, methods of builtin types) are evaluated. Properties, Python
  descriptors and ``__getattr__`` are never run; such chains go to jedi.
  Dict keys are read with ``dict.keys`` on real dicts only. The one exception
  is a class that defines a Python ``__dir__`` (pandas does, to list column
  names): it is called, guarded, to list attribute names. Signatures come
  from `inspect.signature` on functions and classes only (it reads attributes
  such as ``__wrapped__``); defaults with a Python ``__repr__`` are shown by
  type name instead of being repr'd.
- jedi *may* run user code: with its default settings it evaluates properties
  and ``__getattr__`` of live objects while inferring. It does so on its own
  thread, under the budget; an exception there only loses jedi's answer.
- The cell keeps running meanwhile: both threads share the GIL, and completion
  holds it only in short slices.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import functools
import inspect
import keyword
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

JEDI_BUDGET_S = 0.5
"""Seconds to wait for jedi before answering without it."""
MAX_SIGNATURES = 200
"""Compute signatures for at most this many matches (inspect/jedi cost per match)."""
MAX_DIR_ENTRIES = 5000
"""Stop scanning a directory for path completion after this many entries."""

MISSING: Any = object()
"""Returned by `static_getattr`/`resolve_dotted` when a value cannot be read safely."""

_IDENT = r"[^\W\d]\w*"
_DOTTED_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_TRAILING_DOTTED_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*\Z")
_COMPLETION_RE = re.compile(rf"(?:{_IDENT}\.)*(?:{_IDENT})?\Z")
_IMPORT_RE = re.compile(r"\s*(?:import|from)\s")
_FROM_IMPORT_RE = re.compile(r"\s*from\s+([\w.]+)\s+import\s.*?(\w*)\Z")
_IMPORT_NAME_RE = re.compile(r"\s*(?:import|from)\s+(?:.*,\s*)?([\w.]*)\Z")
_EXPR_END = ")]}'\"."
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
_LITERAL_KEY_TYPES = (str, bytes, int, float, bool, type(None))

T = TypeVar("T")

_jedi_lock = threading.Lock()  # held while a jedi run is alive (see run_jedi)


@contextlib.contextmanager
def jedi_lock_for_fork(timeout: float = 3.0):
    """Hold the jedi lock across a fork(), waiting (bounded) for a jedi run to end.

    A jedi thread caught mid-run by fork() (the start-up warm-up importing jedi
    and parsing stubs, or a late completion) leaves the child holding locks no
    thread will ever release: this one, so a promoted snapshot would never use
    jedi again, and the import system's per-module locks. When jedi stays busy
    past ``timeout`` the child at least gets a fresh lock of ours.
    """
    global _jedi_lock
    acquired = _jedi_lock.acquire(timeout=timeout)
    parent = os.getpid()
    try:
        yield
    finally:
        if acquired:
            _jedi_lock.release()
        elif os.getpid() != parent:
            _jedi_lock = threading.Lock()


@dataclass
class Match:
    """One completion: the replacement text plus what a UI shows next to it."""

    text: str
    type: str = ""
    signature: str = ""


@dataclass
class _Result:
    matches: list[Match]
    start: int
    end: int
    final: bool = False  # jedi cannot do better, even when there are no matches


# ---------------------------------------------------------------- public API


def complete(code: str, cursor_pos: int, namespace: dict) -> dict:
    """Jupyter complete_reply content for `code` at `cursor_pos` (code points); never raises."""
    try:
        cursor = clamp_cursor(code, cursor_pos)
    except Exception:
        return _reply(_Result([], 0, 0))
    ns = snapshot(namespace)
    try:
        return _reply(_complete(code, cursor, ns))
    except Exception:
        pass
    try:
        return _reply(_fallback(code, cursor, ns))
    except Exception:
        return _reply(_Result([], cursor, cursor))


def warm_up() -> None:
    """Pay jedi's import and first-inference cost now, off the request path.

    Holds the jedi lock meanwhile, so a Tab pressed during warm-up gets the
    fast answer instead of waiting for a cold jedi.
    """
    with _jedi_lock:
        try:
            import jedi

            jedi.Interpreter("import os\nos.pa", [{}]).complete(2, 5)
        except BaseException:
            pass  # warm-up is best effort


def run_jedi(work: Callable[[], T], budget: float | None = None) -> T | None:
    """Run `work` (which uses jedi) on a helper thread; its result, or None if late/failed/busy.

    Python threads cannot be killed, so a late jedi run is abandoned, not
    stopped: it finishes in the background (taking GIL slices from the
    running cell) and its result is dropped. One lock keeps at most one jedi
    run alive, since jedi is not documented as thread-safe; while an
    abandoned run holds it, new requests skip jedi instead of queueing.
    """
    if not _jedi_lock.acquire(blocking=False):
        return None
    box: list[T] = []
    done = threading.Event()

    def target() -> None:
        try:
            box.append(work())
        except BaseException:
            pass  # a jedi error only loses jedi's answer
        finally:
            _jedi_lock.release()
            done.set()

    try:
        threading.Thread(target=target, name="ipytui-jedi", daemon=True).start()
    except Exception:
        _jedi_lock.release()
        return None
    done.wait(JEDI_BUDGET_S if budget is None else budget)
    return box[0] if box else None


def clamp_cursor(code: str, cursor_pos: int | None) -> int:
    """`cursor_pos` limited to the code; None means the end (older clients)."""
    if not isinstance(code, str):
        raise TypeError("code must be a str")
    if cursor_pos is None:
        return len(code)
    return max(0, min(len(code), int(cursor_pos)))


def line_column(code: str, pos: int) -> tuple[int, int]:
    """jedi's (1-based line, 0-based column) for an index into `code`."""
    before = code[:pos]
    return before.count("\n") + 1, pos - (before.rfind("\n") + 1)


def snapshot(namespace: Mapping) -> dict:
    """A shallow copy of the namespace (one C-level copy for a real dict)."""
    try:
        return dict(namespace)
    except Exception:
        return {}


# --------------------------------------------------------- static attributes


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


# ---------------------------------------------------------------- dispatch


def _complete(code: str, cursor: int, ns: dict) -> _Result:
    fast = _fast_complete(code, cursor, ns)
    if fast is not None and (fast.matches or fast.final):
        return fast
    answer = run_jedi(lambda: _jedi_complete(code, cursor, ns))
    if answer is not None and answer.matches:
        return answer
    return fast if fast is not None else _fallback(code, cursor, ns)


def _fast_complete(code: str, cursor: int, ns: dict) -> _Result | None:
    """The answer from live objects alone, or None when jedi should decide."""
    before = code[:cursor]
    literal = _open_string(before)
    if literal is _IN_COMMENT:
        return _Result([], cursor, cursor, final=True)
    if literal is not None:
        return _complete_in_string(code, cursor, literal, ns)
    line = before[before.rfind("\n") + 1 :]
    if _IMPORT_RE.match(line):
        return None
    keys = _complete_bare_key(code, cursor, line, ns)
    return keys if keys is not None else _complete_dotted(code, cursor, line, ns)


def _complete_dotted(code: str, cursor: int, line: str, ns: dict) -> _Result | None:
    """Plain names, or attributes of a live dotted chain (`obj.attr.pre`)."""
    m = _COMPLETION_RE.search(line)
    if m is None or _ends_expression(line[: m.start()]):
        return None
    *parents, prefix = m.group().split(".")
    start = cursor - len(prefix)
    if not parents:
        params = _call_params(code[:start], prefix, ns)
        if params is None:
            return None
        return _Result(params + _name_matches(prefix, ns), start, cursor)
    obj = resolve_dotted(".".join(parents), ns)
    if obj is MISSING and parents[0] not in ns:
        imported = _imported_here(code[:start]).get(parents[0])
        if imported is not None:
            obj = resolve_dotted(".".join(parents), {parents[0]: imported})
    if obj is MISSING:
        return None
    found = {n: _attribute_value(obj, n) for n in attribute_names(obj) if _visible(n, prefix)}
    return _Result(_describe(found), start, cursor, final=True)


_PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)[ \t]*$", re.M)


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


def _ends_expression(text: str) -> bool:
    """True when `text` ends in something a name would hang off (`f().`, `x[0].`, `1.`)."""
    last = text[-1:]
    return bool(last) and (last in _EXPR_END or last.isalnum() or last == "_")


def _visible(name: str, prefix: str) -> bool:
    """Does `name` complete `prefix`? Private names only once the user typed `_`."""
    return name.startswith(prefix) and (prefix.startswith("_") or not name.startswith("_"))


def _sort_key(name: str) -> tuple[int, str]:
    return (name.startswith("__") + name.startswith("_"), name.lower())


def _describe(found: Mapping[str, Any]) -> list[Match]:
    """Matches with type and signature for names bound to live values (MISSING: unread)."""
    matches = []
    for i, name in enumerate(sorted(found, key=_sort_key)):
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


def _name_matches(prefix: str, ns: dict) -> list[Match]:
    """Namespace names, builtins and keywords starting with `prefix`."""
    found: dict[str, Any] = {}
    for source in (ns, vars(builtins)):
        for name, value in source.items():
            if isinstance(name, str) and _visible(name, prefix):
                found.setdefault(name, value)
    words = [w for w in (*keyword.kwlist, *keyword.softkwlist) if w != "_" and w not in found]
    matches = _describe(found)
    matches += [Match(w, "keyword") for w in words if _visible(w, prefix)]
    matches.sort(key=lambda m: _sort_key(m.text))
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


def _call_params(before_word: str, prefix: str, ns: dict) -> list[Match] | None:
    """``param=`` matches when typing an argument of a live callable; None to ask jedi."""
    if not before_word.rstrip().endswith(("(", ",")):
        return []  # not where an argument name goes
    paren = open_call(before_word)
    if paren is None:
        return []
    head = before_word[:paren]
    m = _TRAILING_DOTTED_RE.search(head)
    if m is None:
        return None if _ends_expression(head) else []
    if _ends_expression(head[: m.start()]):
        return None
    if keyword.iskeyword(m.group()):
        return []
    callee = resolve_dotted(m.group(), ns)
    if callee is MISSING:
        return None
    try:
        params = inspect.signature(callee).parameters.values()
    except Exception:
        return []
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        Match(f"{p.name}=", "param") for p in params if p.kind in named and _visible(p.name, prefix)
    ]


# ------------------------------------------------------------ string literals


@dataclass
class _OpenString:
    prefix: str  # string prefix letters such as "rb"
    quote: str  # ' " ''' or \"\"\"
    start: int  # index of the literal (its prefix letters included)
    content_start: int


_IN_COMMENT: Any = object()


def _open_string(text: str) -> _OpenString | None:
    """The string literal still open at the end of `text`, _IN_COMMENT, or None."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            newline = text.find("\n", i)
            if newline == -1:
                return _IN_COMMENT
            i = newline + 1
        elif ch in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            end = _string_end(text, i + len(quote), quote)
            if end is None:
                prefix = _string_prefix(text, i)
                return _OpenString(prefix, quote, i - len(prefix), i + len(quote))
            i = end
        else:
            i += 1
    return None


def _string_end(text: str, i: int, quote: str) -> int | None:
    """Index just past the literal's closing quote, or None if it is still open."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        elif text[i] == "\n" and len(quote) == 1:
            return i + 1
        else:
            i += 1
    return None


def _string_prefix(text: str, quote_at: int) -> str:
    j = quote_at
    while j > 0 and quote_at - j < 2 and text[j - 1] in "rRbBuUfF":
        j -= 1
    if j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
        return ""
    return text[j:quote_at]


def _complete_in_string(code: str, cursor: int, lit: _OpenString, ns: dict) -> _Result | None:
    if "f" in lit.prefix.lower():
        return None  # f-string fields are code; let jedi look
    target = _subscript_target(code[: lit.start], ns)
    if target is _NO_SUBSCRIPT:
        return _complete_path(cursor, code[lit.content_start : cursor], lit.quote)
    keys = _dict_keys(target)
    if keys is None:
        return None
    typed = code[lit.content_start : cursor]
    want_bytes = "b" in lit.prefix.lower()
    closer = lit.quote + "]"
    matches = []
    for key in keys:
        if isinstance(key, bytes if want_bytes else str):
            body = _quoted_body(key, lit.quote[0])
            if body.startswith(typed):
                matches.append(Match(body + closer, "dict key"))
    matches.sort(key=lambda m: m.text)
    end = cursor + _overlap(code[cursor:], closer)
    return _Result(matches, lit.content_start, end, final=True)


_NO_SUBSCRIPT: Any = object()


def _subscript_target(text: str, ns: dict) -> Any:
    """The live object subscripted right before a literal, _NO_SUBSCRIPT, or MISSING."""
    head = text.rstrip(" ")
    if not head.endswith("["):
        return _NO_SUBSCRIPT
    head = head[:-1].rstrip(" ")
    if not head or not (head[-1] in _EXPR_END or head[-1].isalnum() or head[-1] == "_"):
        return _NO_SUBSCRIPT  # a list display such as `["a", "b`
    m = _TRAILING_DOTTED_RE.search(head)
    if m is None or _ends_expression(head[: m.start()]):
        return MISSING
    return resolve_dotted(m.group(), ns)


def _dict_keys(obj: object) -> list | None:
    """Keys of a real dict (read with dict.keys, so no user code); None otherwise."""
    if obj is MISSING or not issubclass(type(obj), dict):
        return None
    try:
        return list(dict.keys(obj))
    except Exception:
        return None


def _quoted_body(key: str | bytes, quote: str) -> str:
    """`key` written between `quote` characters, escaped as Python source."""
    text = repr(key)
    if isinstance(key, bytes):
        text = text[1:]
    body = text[1:-1]
    return body if text[0] == quote else body.replace(quote, "\\" + quote)


def _overlap(after: str, closer: str) -> int:
    """How much of `closer` already follows the cursor (so a match replaces it)."""
    n = 0
    while n < len(closer) and after[n : n + 1] == closer[n]:
        n += 1
    return n


def _literal_repr(key: object) -> str | None:
    """Source text for a key of a literal type (no user __repr__ is called)."""
    if type(key) in _LITERAL_KEY_TYPES:
        return repr(key)
    if type(key) is tuple:
        parts = [_literal_repr(k) for k in key]
        if None not in parts:
            return repr(key)
    return None


def _complete_bare_key(code: str, cursor: int, line: str, ns: dict) -> _Result | None:
    """`d[` or `d[1`: keys of a live dict written as literals."""
    m = re.search(r"\[\s*([-+]?[\d.]*)\Z", line)
    if m is None:
        return None
    target = _subscript_target(line[: m.end() - len(m.group(1))].rstrip(), ns)
    keys = _dict_keys(target)
    if keys is None:
        return None
    typed = m.group(1)
    texts = sorted({r for r in map(_literal_repr, keys) if r is not None and r.startswith(typed)})
    end = cursor + _overlap(code[cursor:], "]")
    return _Result(
        [Match(t + "]", "dict key") for t in texts], cursor - len(typed), end, final=True
    )


def _complete_path(cursor: int, typed: str, quote: str) -> _Result:
    """Files and directories for the path typed so far in a string (dirs end with '/')."""
    if "\n" in typed or "\0" in typed:
        return _Result([], cursor, cursor)
    if typed.startswith("~") and "/" not in typed:
        matches = [Match("~/", "path")] if typed == "~" else []
        return _Result(matches, cursor - len(typed), cursor)
    head, _, base = typed.rpartition("/")
    directory = os.path.expanduser(head + "/") if "/" in typed else "."
    matches = [Match(name, "path") for name in _list_dir(directory, base, quote)]
    return _Result(matches, cursor - len(base), cursor, final=bool(matches))


def _list_dir(directory: str, base: str, quote: str) -> list[str]:
    names = []
    try:
        with os.scandir(directory) as entries:
            for i, entry in enumerate(entries):
                if i >= MAX_DIR_ENTRIES:
                    break
                name = entry.name
                if not _visible_path(name, base) or any(c in name for c in (quote[0], "\\", "\n")):
                    continue
                names.append(name + "/" if _is_dir(entry) else name)
    except OSError:
        return []
    return sorted(names, key=str.lower)


def _visible_path(name: str, base: str) -> bool:
    return name.startswith(base) and (base.startswith(".") or not name.startswith("."))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# ---------------------------------------------------------------- jedi


def _jedi_complete(code: str, cursor: int, ns: dict) -> _Result:
    """jedi's completions as a result; runs on the jedi thread (types/signatures too)."""
    import jedi

    line, column = line_column(code, cursor)
    completions = jedi.Interpreter(code, [ns]).complete(line, column)
    starts = [cursor - c.get_completion_prefix_length() for c in completions]
    start = min(starts, default=cursor)
    matches = []
    for c, s in zip(completions, starts, strict=True):
        text = code[start:s] + c.name_with_symbols
        if c.name.startswith("_") and not code[s:cursor].lstrip("'\"").startswith("_"):
            continue  # private names only once the user typed `_`
        kind = c.type
        signature = ""
        if kind in ("function", "class") and len(matches) < MAX_SIGNATURES:
            signature = _jedi_signature(c)
        matches.append(Match(text, kind, signature))
    return _Result(matches, start, cursor)


def _jedi_signature(completion: Any) -> str:
    try:
        signatures = completion.get_signatures()
        return signatures[0].to_string() if signatures else ""
    except Exception:
        return ""


# ---------------------------------------------------------------- fallback


def _fallback(code: str, cursor: int, ns: dict) -> _Result:
    """The plain answer when neither the fast path nor jedi had one."""
    before = code[:cursor]
    line = before[before.rfind("\n") + 1 :]
    if _IMPORT_RE.match(line):
        return _import_fallback(line, cursor)
    word = re.search(r"\w*\Z", line).group()
    if _ends_expression(line[: len(line) - len(word)]) or (word and word[0].isdigit()):
        return _Result([], cursor, cursor)
    return _Result(_name_matches(word, ns), cursor - len(word), cursor)


def _import_fallback(line: str, cursor: int) -> _Result:
    """Names from already imported modules, for `import x` / `from x import y`."""
    m = _FROM_IMPORT_RE.match(line)
    if m is not None:
        module = sys.modules.get(m.group(1))
        names = {n: v for n, v in _module_dict(module).items() if _visible(n, m.group(2))}
        return _Result(_describe(names), cursor - len(m.group(2)), cursor)
    m = _IMPORT_NAME_RE.match(line)
    if m is None:
        return _Result([], cursor, cursor)
    parent, _, prefix = m.group(1).rpartition(".")
    lead = f"{parent}." if parent else ""
    known = {*sys.modules, *sys.builtin_module_names}
    names = {n[len(lead) :].split(".")[0] for n in known if n.startswith(lead)}
    matches = [Match(n, "module") for n in sorted(names, key=_sort_key) if _visible(n, prefix)]
    return _Result(matches, cursor - len(prefix), cursor)


def _module_dict(module: object) -> dict:
    return _instance_dict(module) if isinstance(module, types.ModuleType) else {}


# ---------------------------------------------------------------- reply


def _reply(result: _Result) -> dict:
    """complete_reply content, with duplicates dropped (first one wins)."""
    seen: set[str] = set()
    texts: list[str] = []
    meta: list[dict] = []
    for m in result.matches:
        if m.text in seen:
            continue
        seen.add(m.text)
        texts.append(m.text)
        meta.append(
            {
                "start": result.start,
                "end": result.end,
                "text": m.text,
                "type": m.type,
                "signature": m.signature,
            }
        )
    return {
        "status": "ok",
        "matches": texts,
        "cursor_start": result.start,
        "cursor_end": result.end,
        "metadata": {"_jupyter_types_experimental": meta},
    }
