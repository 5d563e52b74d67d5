"""What a failed ``%undo`` tells its sender and the peers (supervisor/undo.py)."""

from __future__ import annotations

from typing import Any


def woken(stage: str, target: int, newest: int) -> str:
    """The process an undo woke at ``stage``, for its error messages."""
    if stage == "fallback":
        return "fallback (the state before the undo)"
    if stage == "newest":
        return f"newest kept point (after cell [{newest}])"
    return f"restore point after cell [{target}]"


def outcome(stage: str, newest: int, lost: list[int]) -> str:
    """What a failed undo left serving: the state before it, a kept point's, or nothing."""
    if stage == "fallback":
        return "Nothing was undone: the namespace is as it was before the %undo."
    if stage != "newest":
        return "The kernel starts empty."
    if not lost:
        return (
            f"Nothing was undone: the newest kept point (the state after cell "
            f"[{newest}], the last before the %undo) serves in its place."
        )
    cells = ", ".join(f"[{c}]" for c in lost)
    return (
        f"The newest kept point serves in its place: the state after cell "
        f"[{newest}]; the changes of cells {cells} are lost."
    )


def error_content(text: str) -> dict[str, Any]:
    """The error of the %undo cell: its reply and the shared stream carry it."""
    return {"ename": "UndoFailed", "evalue": text, "traceback": [f"UndoFailed: {text}"]}
