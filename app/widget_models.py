"""Jupyter widgets as text: model states read from the comm messages seen on IOPub.

A widget-view bundle only names a model; the model's state travels in
``comm_open`` (full state) and ``comm_msg`` (``method: update``, changed
keys) from the kernel to every client. This keeps those states and says
what a view shows: the widget's type and its current value, updated live.
Interacting with widgets is not offered.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from rich.text import Text

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_TARGET = "jupyter.widget"
# Keys worth showing after the value, when a model has them.
_DETAIL_KEYS = ("min", "max", "step")
MAX_VALUE_CHARS = 80
MAX_MODELS = 10_000
MAX_DEPTH = 3  # containers inside containers shown inline, then counted
MODEL_REF = "IPY_MODEL_"  # how a container's state names a child model
_TEXT_MODELS = frozenset({"HTMLModel", "LabelModel", "HTMLMathModel"})
_TAG = re.compile(r"<[^>]*>")
Lookup = Callable[[str], "dict[str, Any] | None"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def describe_state(state: dict[str, Any], lookup: Lookup | None = None, depth: int = 0) -> str:
    """One line for a widget model: ``IntSlider 'n' = 7 (min 0, max 100, step 1)``.

    A container whose children ``lookup`` knows shows them inline, so a tqdm /
    ipyparallel progress bar (an HBox of text, progress and text) reads
    ``HBox: Waiting | FloatProgress 50% = 2 (min 0, max 4) | 2/4 [00:01<00:01]``.
    """
    kind = str(state.get("_model_name") or "Widget").removesuffix("Model")
    children = _children(state, lookup) if depth < MAX_DEPTH else None
    if children is not None:
        shown = (_inline(child, lookup, depth + 1) for child in children)
        return f"{kind}: " + " | ".join(text for text in shown if text)
    parts = [kind]
    if state.get("description"):
        parts.append(_short(state["description"]))
    if kind.endswith("Progress"):
        parts.append(_percent(state))
    if "value" in state:
        parts.append(f"= {_short(state['value'])}")
    elif "index" in state and state.get("_options_labels"):
        labels = state["_options_labels"]
        index = state["index"]
        chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else index
        parts.append(f"= {_short(chosen)}")
    elif isinstance(state.get("children"), list):
        parts.append(f"({len(state['children'])} children)")
    details = [f"{k} {_short(state[k])}" for k in _DETAIL_KEYS if k in state]
    if details:
        parts.append(f"({', '.join(details)})")
    return " ".join(p for p in parts if p)


def _children(state: dict[str, Any], lookup: Lookup | None) -> list[dict[str, Any]] | None:
    """The states of a container's children, when every one of them is known."""
    refs = state.get("children")
    if lookup is None or not isinstance(refs, list) or not refs:
        return None
    found = [lookup(ref.removeprefix(MODEL_REF)) if isinstance(ref, str) else None for ref in refs]
    return None if any(child is None for child in found) else found  # type: ignore[return-value]


def _inline(state: dict[str, Any], lookup: Lookup | None, depth: int) -> str:
    """A child inside its container's line: a text widget is just its text."""
    kind = str(state.get("_model_name") or "")
    if kind in _TEXT_MODELS:
        text = html.unescape(_TAG.sub("", str(state.get("value") or ""))).strip()
        return _short_text(" ".join(filter(None, [str(state.get("description") or ""), text])))
    return describe_state(state, lookup, depth)


def _percent(state: dict[str, Any]) -> str:
    low, high, value = state.get("min", 0), state.get("max"), state.get("value")
    numbers = all(isinstance(x, (int, float)) for x in (low, high, value))
    if not numbers or high <= low:
        return ""
    return f"{100 * (value - low) / (high - low):.0f}%"


def _short_text(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


class WidgetModels:
    """Widget model states by comm id, from the comm messages the kernel publishes."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def apply(self, msg_type: str, content: dict[str, Any]) -> str | None:
        """Take a comm message in; the comm id whose state changed, else None."""
        comm_id = content.get("comm_id")
        data = content.get("data")
        if not isinstance(comm_id, str) or not isinstance(data, dict):
            return None
        state = data.get("state")
        if msg_type == "comm_open":
            if content.get("target_name") != WIDGET_TARGET or not isinstance(state, dict):
                return None
            if len(self.states) >= MAX_MODELS and comm_id not in self.states:
                self.states.pop(next(iter(self.states)))  # the oldest goes: bounded
            self.states[comm_id] = dict(state)
            return comm_id
        updates = data.get("method") in ("update", "echo_update") and isinstance(state, dict)
        if msg_type == "comm_msg" and comm_id in self.states and updates:
            self.states[comm_id].update(state)
            return comm_id
        if msg_type == "comm_close":
            self.states.pop(comm_id, None)
        return None

    def containers_of(self, model_id: str) -> list[str]:
        """The models that show ``model_id`` inline (its containers, up to MAX_DEPTH)."""
        found: list[str] = []
        wanted = {model_id}
        for _ in range(MAX_DEPTH):
            refs = {MODEL_REF + m for m in wanted}
            wanted = {
                cid
                for cid, state in self.states.items()
                if isinstance(state.get("children"), list)
                and refs.intersection(r for r in state["children"] if isinstance(r, str))
            } - set(found)
            if not wanted:
                break
            found.extend(wanted)
        return found

    def view(self, bundle: dict[str, Any]) -> Text:
        """What a widget-view bundle shows: the model's line, or what is known without it."""
        ref = bundle.get(WIDGET_VIEW_MIME)
        model_id = ref.get("model_id") if isinstance(ref, dict) else None
        state = self.states.get(model_id) if isinstance(model_id, str) else None
        if state is not None:
            return Text(f"[widget] {describe_state(state, self.states.get)}")
        plain = bundle.get("text/plain")
        shown = plain if isinstance(plain, str) else "a widget"
        return Text(f"[widget] {shown} (its state was not seen: opened before this UI joined)")
