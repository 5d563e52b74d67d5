"""Completion inside string literals: keys of live dicts, and file paths.

`open_string` finds the literal still open at the cursor (or a comment).
Inside ``d["...`` it offers the keys of a live dict, read with ``dict.keys``
on real dicts only, so no user code runs; ``d[`` and ``d[1`` get literal keys
too. Any other string gets file and directory names. f-strings are left to
jedi, since their fields are code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ipytui.kernel.worker.completion_names import (
    EXPR_END,
    TRAILING_DOTTED_RE,
    Match,
    Result,
    ends_expression,
)
from ipytui.kernel.worker.static_attrs import MISSING, resolve_dotted

MAX_DIR_ENTRIES = 5000
"""Stop scanning a directory for path completion after this many entries."""

_LITERAL_KEY_TYPES = (str, bytes, int, float, bool, type(None))


@dataclass
class OpenString:
    """A string literal still open at the cursor."""

    prefix: str  # string prefix letters such as "rb"
    quote: str  # ' " ''' or \"\"\"
    start: int  # index of the literal (its prefix letters included)
    content_start: int


IN_COMMENT: Any = object()
"""Returned by `open_string` when the text ends inside a comment."""


def open_string(text: str) -> OpenString | None:
    """The string literal still open at the end of `text`, IN_COMMENT, or None."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            newline = text.find("\n", i)
            if newline == -1:
                return IN_COMMENT
            i = newline + 1
        elif ch in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            end = _string_end(text, i + len(quote), quote)
            if end is None:
                prefix = _string_prefix(text, i)
                return OpenString(prefix, quote, i - len(prefix), i + len(quote))
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


def complete_in_string(code: str, cursor: int, lit: OpenString, ns: dict) -> Result | None:
    """Keys of a live dict for ``d["...``, file paths in other strings; None to ask jedi."""
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
    return Result(matches, lit.content_start, end, final=True)


_NO_SUBSCRIPT: Any = object()


def _subscript_target(text: str, ns: dict) -> Any:
    """The live object subscripted right before a literal, _NO_SUBSCRIPT, or MISSING."""
    head = text.rstrip(" ")
    if not head.endswith("["):
        return _NO_SUBSCRIPT
    head = head[:-1].rstrip(" ")
    if not head or not (head[-1] in EXPR_END or head[-1].isalnum() or head[-1] == "_"):
        return _NO_SUBSCRIPT  # a list display such as `["a", "b`
    m = TRAILING_DOTTED_RE.search(head)
    if m is None or ends_expression(head[: m.start()]):
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


def complete_bare_key(code: str, cursor: int, line: str, ns: dict) -> Result | None:
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
    return Result([Match(t + "]", "dict key") for t in texts], cursor - len(typed), end, final=True)


def _complete_path(cursor: int, typed: str, quote: str) -> Result:
    """Files and directories for the path typed so far in a string (dirs end with '/')."""
    if "\n" in typed or "\0" in typed:
        return Result([], cursor, cursor)
    if typed.startswith("~") and "/" not in typed:
        matches = [Match("~/", "path")] if typed == "~" else []
        return Result(matches, cursor - len(typed), cursor)
    head, _, base = typed.rpartition("/")
    directory = os.path.expanduser(head + "/") if "/" in typed else "."
    matches = [Match(name, "path") for name in _list_dir(directory, base, quote)]
    return Result(matches, cursor - len(base), cursor, final=bool(matches))


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
