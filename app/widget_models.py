"""Jupyter widgets as text: model states read from the comm messages seen on IOPub.

A widget-view bundle only names a model; the model's state travels in
``comm_open`` (full state) and ``comm_msg`` (``method: update``, changed
keys) from the kernel to every client. This keeps those states and says
what a view shows: the widget's type and its current value, updated live.
Interacting with widgets is not offered.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_TARGET = "jupyter.widget"
# Keys worth showing after the value, when a model has them.
_DETAIL_KEYS = ("min", "max", "step")
MAX_VALUE_CHARS = 80
MAX_MODELS = 10_000


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def describe_state(state: dict[str, Any]) -> str:
    """One line for a widget model: ``IntSlider 'n' = 7 (min 0, max 100, step 1)``."""
    kind = str(state.get("_model_name") or "Widget").removesuffix("Model")
    parts = [kind]
    if state.get("description"):
        parts.append(_short(state["description"]))
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
    return " ".join(parts)


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

    def view(self, bundle: dict[str, Any]) -> Text:
        """What a widget-view bundle shows: the model's line, or what is known without it."""
        ref = bundle.get(WIDGET_VIEW_MIME)
        model_id = ref.get("model_id") if isinstance(ref, dict) else None
        state = self.states.get(model_id) if isinstance(model_id, str) else None
        if state is not None:
            return Text(f"[widget] {describe_state(state)}")
        plain = bundle.get("text/plain")
        shown = plain if isinstance(plain, str) else "a widget"
        return Text(f"[widget] {shown} (its state was not seen: opened before this UI joined)")
