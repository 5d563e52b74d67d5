"""What happened before a UI attached, and the events every client is told: the
journal's cells and the shared kernel events (``ipytui_event``), drawn in the
order they happened. A mixin of :class:`~ipytui.app.output_router.OutputRouter`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipytui.kernel.protocol.events import event_text
from ipytui.kernel.protocol.recovery import report_text
from ipytui.widgets.output_stream import OutputStream
from rich.text import Text

_REPLAYED = {"stream", "execute_result", "display_data", "error"}
# How the journal's cell statuses show; a crashed cell is marked as one that died.
_JOURNAL_STATUS = {"ok": "ok", "error": "error", "aborted": "aborted", "died": "died",
                   "crashed": "died"}


@dataclass
class _Replayed:
    """A journal output dressed as the IOPub message it was, for the usual handlers."""

    msg_type: str
    content: dict[str, Any]
    parent_id: str
    session: str

    @property
    def parent_header(self) -> dict[str, Any]:
        return {"msg_id": self.parent_id, "session": self.session, "msg_type": "execute_request"}


class HistoryReplay:
    """Replayed cells and shared-event notes (see the module docstring)."""

    stream: OutputStream
    _result: Any
    _handlers: dict[str, Callable[[Any], None]]
    who: Callable[[str, str], str]
    _new_result: Callable[[], Any]

    def replay(self, cells: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> None:
        """Cells and shared events from before we attached (the presence replay, from
        the journal), shown as history in the order they happened."""
        self._result = self._new_result()  # a replayed death or recovery report is not news
        items: list[tuple[float, int, dict[str, Any], bool]] = [
            (_when(c.get("started")), i, c, False) for i, c in enumerate(cells) if isinstance(c, dict)]
        items += [(_when(e.get("time")), len(items) + i, e, True)
                  for i, e in enumerate(events or []) if isinstance(e, dict)]
        for _, _, data, is_event in sorted(items, key=lambda item: item[:2]):
            if is_event:
                self._event_note(data, history=True)
            else:
                self._replay_cell(data)
        self.stream.enforce_limit()

    def _replay_cell(self, data: dict[str, Any]) -> None:
        cell_id = data.get("msg_id") or f"history-{data.get('id', len(self.stream.cells))}"
        if not isinstance(cell_id, str) or self.stream.cell(cell_id) is not None:
            return
        session = data.get("client_session") or ""
        session = session if isinstance(session, str) else ""
        count = data.get("execution_count")
        self.stream.add_cell(
            cell_id,
            code=data.get("code") if isinstance(data.get("code"), str) else "",
            who=self.who(session, str(data.get("username") or "")),
            own=False,
            session=session,
            execution_count=count if isinstance(count, int) else None,
            status=_JOURNAL_STATUS.get(str(data.get("status")), "ok"),
            history=True,
        )
        for output in data.get("outputs") or []:
            if not isinstance(output, dict) or not isinstance(output.get("content"), dict):
                continue
            msg = _Replayed(output.get("msg_type", ""), output["content"], cell_id, session)
            if msg.msg_type in _REPLAYED:
                self._handlers[msg.msg_type](msg)
        cell = self.stream.cell(cell_id)
        if cell is not None and cell.status != _JOURNAL_STATUS.get(str(data.get("status")), "ok"):
            cell.set_status(_JOURNAL_STATUS.get(str(data.get("status")), "ok"))  # as the journal says

    # -- shared kernel events -------------------------------------------------------------
    def _event(self, msg: Any) -> None:
        """A crash, restart, restore, undo, interrupt or recovery, told to every client."""
        if not isinstance(msg.content, dict) or msg.content.get("event") is None:
            return
        self._result.events.append(msg.content)
        self._event_note(msg.content, history=False)

    def _event_note(self, event: dict[str, Any], *, history: bool) -> None:
        """A line in the stream for an event (a crash shows in its cell instead)."""
        kind = event.get("event")
        if kind == "timeline":
            return  # a state for the timeline screen, not a line in the stream
        cell_id = f"event-{kind}-{event.get('time')}"
        if kind == "crash" and (event.get("cell_msg_id") or not history):
            return  # told by its cell's error; live, a cell-less one comes as display_data
        if kind == "undo" and event.get("cell_msg_id") and not history:
            return  # told live by the %undo cell's own output
        if kind == "cluster" and not event.get("error"):
            return  # the status bar and the cluster pane show the engines
        if self.stream.cell(cell_id) is not None:
            return
        text = event_text(event)
        if kind == "crash" and isinstance(event.get("report"), dict):
            with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                text = report_text(event["report"])  # the display_data the journal did not keep
        self.stream.add_cell(cell_id, who="kernel", status="event", history=history)
        self.stream.add_output(cell_id, Text(text), kind="note")


def _when(value: Any) -> float:
    """A journal time for ordering (a missing one sorts first)."""
    return float(value) if isinstance(value, (int, float)) else 0.0
