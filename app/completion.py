"""Completion replies into menu items, and filtering as the user keeps typing. Pure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ipytui.widgets.completion_menu import CompletionItem

MAX_ITEMS = 200


@dataclass
class Completion:
    """An open completion: the replaced range starts at ``start`` (code-point offset)."""

    start: int
    items: list[CompletionItem] = field(default_factory=list)


def items_from_reply(content: dict[str, Any]) -> list[CompletionItem]:
    """Menu items from a complete_reply, with type and signature when the kernel gives them."""
    matches = [m for m in content.get("matches") or [] if isinstance(m, str)]
    typed = (content.get("metadata") or {}).get("_jupyter_types_experimental") or []
    details: dict[str, dict[str, Any]] = {}
    for entry in typed:
        if isinstance(entry, dict) and isinstance(entry.get("text"), str):
            details.setdefault(entry["text"], entry)
    items = []
    for match in dict.fromkeys(matches):
        info = details.get(match, {})
        items.append(
            CompletionItem(
                text=match,
                type=str(info.get("type") or ""),
                signature=str(info.get("signature") or ""),
            )
        )
    return items[:MAX_ITEMS]


def common_prefix(items: list[CompletionItem]) -> str:
    return os.path.commonprefix([item.text for item in items]) if items else ""


def filter_items(items: list[CompletionItem], typed: str) -> list[CompletionItem]:
    """Items still matching what was typed since the menu opened (case-sensitive first)."""
    exact = [item for item in items if item.text.startswith(typed)]
    if exact:
        return exact
    lowered = typed.lower()
    return [item for item in items if item.text.lower().startswith(lowered)]


def still_completing(typed: str) -> bool:
    """False once the user typed something that ends a name (space, bracket, operator)."""
    return all(ch.isalnum() or ch in "_." for ch in typed)
