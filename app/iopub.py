"""Small pure helpers over IOPub messages: burst merging and parent facts."""

from __future__ import annotations

import copy
import re
from typing import Any

HELP_QUERY = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(\?{1,2})\s*$|^\s*(\?{1,2})\s*([A-Za-z_][\w.]*)\s*$")
NAME_BEFORE = re.compile(r"[A-Za-z_][\w.]*$")


def coalesce_streams(messages: list[Any]) -> list[Any]:
    """Merge runs of stream messages with the same parent and stream name.

    Order is kept: a stream message only merges into the one right before it,
    so output interleaved with results or other streams stays interleaved.
    """
    merged: list[Any] = []
    texts: list[str] = []
    for msg in messages:
        last = merged[-1] if merged else None
        if (
            last is not None
            and msg.msg_type == "stream"
            and last.msg_type == "stream"
            and msg.parent_id == last.parent_id
            and msg.content.get("name") == last.content.get("name")
        ):
            texts.append(msg.content.get("text", ""))
            continue
        _flush(merged, texts)
        if msg.msg_type == "stream":
            merged.append(msg)
            texts = [msg.content.get("text", "")]
        else:
            merged.append(msg)
            texts = []
    _flush(merged, texts)
    return merged


def _flush(merged: list[Any], texts: list[str]) -> None:
    if len(texts) > 1:
        last = copy.copy(merged[-1])
        last.content = dict(last.content, text="".join(texts))
        merged[-1] = last


def help_query(code: str) -> tuple[str, int] | None:
    """``obj?`` / ``obj??`` / ``?obj`` as (name, detail_level), or None."""
    match = HELP_QUERY.match(code)
    if not match:
        return None
    name = match.group(1) or match.group(4)
    marks = match.group(2) or match.group(3)
    return name, len(marks) - 1


def name_at(code: str, cursor_pos: int) -> str:
    """The dotted name that ends at the cursor (for the help pane's title)."""
    end = cursor_pos
    while end < len(code) and (code[end].isalnum() or code[end] == "_"):
        end += 1
    match = NAME_BEFORE.search(code[:end])
    return match.group(0) if match else ""


def parent_session(msg: Any) -> str:
    return (msg.parent_header or {}).get("session", "")


def parent_username(msg: Any) -> str:
    return (msg.parent_header or {}).get("username", "")


def parent_type(msg: Any) -> str:
    return (msg.parent_header or {}).get("msg_type", "")
