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

This module holds the entry points, the dispatch, jedi and the fallbacks. The
fast path lives in `completion_names` (names, attributes, ``param=``) and
`completion_strings` (dict keys, file paths); both read live objects through
`static_attrs`.

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

import re
import sys
from collections.abc import Mapping
from typing import Any

from ipytui.kernel.worker.completion_imports import IMPORT_LINE_RE, complete_import
from ipytui.kernel.worker.completion_names import (
    MAX_SIGNATURES,
    Match,
    Result,
    complete_dotted,
    ends_expression,
    name_matches,
)
from ipytui.kernel.worker.completion_strings import (
    IN_COMMENT,
    complete_bare_key,
    complete_in_string,
    open_string,
)
from ipytui.kernel.worker.jedi_runner import run_jedi
from ipytui.kernel.worker.static_attrs import MISSING, kind_of, resolve_dotted

# ---------------------------------------------------------------- public API


def complete(code: str, cursor_pos: int, namespace: dict) -> dict:
    """Jupyter complete_reply content for `code` at `cursor_pos` (code points); never raises."""
    try:
        cursor = clamp_cursor(code, cursor_pos)
    except Exception:
        return _reply(Result([], 0, 0))
    ns = snapshot(namespace)
    try:
        return _reply(_complete(code, cursor, ns))
    except Exception:
        pass
    try:
        return _reply(_fallback(code, cursor, ns))
    except Exception:
        return _reply(Result([], cursor, cursor))


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


# ---------------------------------------------------------------- dispatch


def _complete(code: str, cursor: int, ns: dict) -> Result:
    fast = _fast_complete(code, cursor, ns)
    if fast is not None and (fast.matches or fast.final):
        return fast
    answer = run_jedi(lambda: _jedi_complete(code, cursor, ns))
    if answer is not None and answer.matches:
        return answer
    return fast if fast is not None else _fallback(code, cursor, ns)


def _fast_complete(code: str, cursor: int, ns: dict) -> Result | None:
    """The answer from live objects alone, or None when jedi should decide."""
    before = code[:cursor]
    literal = open_string(before)
    if literal is IN_COMMENT:
        return Result([], cursor, cursor, final=True)
    if literal is not None:
        return complete_in_string(code, cursor, literal, ns)
    line = before[before.rfind("\n") + 1 :]
    if IMPORT_LINE_RE.match(line):
        return complete_import(line, cursor)
    keys = complete_bare_key(code, cursor, line, ns)
    return keys if keys is not None else complete_dotted(code, cursor, line, ns)


# ---------------------------------------------------------------- jedi


def _jedi_complete(code: str, cursor: int, ns: dict) -> Result:
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
        kind = jedi_kind(c) if len(matches) < MAX_SIGNATURES else c.type
        signature = ""
        if kind in ("function", "class") and len(matches) < MAX_SIGNATURES:
            signature = _jedi_signature(c)
        matches.append(Match(text, kind, signature))
    return Result(matches, start, cursor)


_UNSURE_KINDS = ("module", "statement", "instance")
"""jedi's name kinds that say how a name was bound, not what it holds: checked (see jedi_kind)."""


def jedi_kind(completion: Any) -> str:
    """What a jedi completion *is*: the live object's kind when its module is loaded,
    else jedi's inferred type. jedi's own `type` is how the name was bound: a stub's
    ``pardir: str`` says "module", ``import posixpath as path`` says "statement"."""
    kind = completion.type
    if kind not in _UNSURE_KINDS:
        return kind
    value = _live_by_full_name(completion.full_name or "")
    if value is not MISSING:
        return kind_of(value)
    try:
        inferred = {d.type for d in completion.infer()}
    except Exception:
        inferred = set()
    if len(inferred) == 1:
        kind = inferred.pop()
    return "instance" if kind == "statement" else kind


def _live_by_full_name(full_name: str) -> Any:
    """The object a dotted full name names, read statically from a loaded module; MISSING."""
    parts = full_name.split(".")
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None:
            return resolve_dotted(".".join(["m", *parts[i:]]), {"m": module})
    return MISSING


def _jedi_signature(completion: Any) -> str:
    try:
        signatures = completion.get_signatures()
        return signatures[0].to_string() if signatures else ""
    except Exception:
        return ""


# ---------------------------------------------------------------- fallback


def _fallback(code: str, cursor: int, ns: dict) -> Result:
    """The plain answer when neither the fast path nor jedi had one."""
    before = code[:cursor]
    line = before[before.rfind("\n") + 1 :]
    if IMPORT_LINE_RE.match(line):
        return complete_import(line, cursor, loaded_only=True) or Result([], cursor, cursor)
    word = re.search(r"\w*\Z", line).group()
    if ends_expression(line[: len(line) - len(word)]) or (word and word[0].isdigit()):
        return Result([], cursor, cursor)
    return Result(name_matches(word, ns), cursor - len(word), cursor)


# ---------------------------------------------------------------- reply


def _reply(result: Result) -> dict:
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
