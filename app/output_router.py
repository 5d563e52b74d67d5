"""OutputRouter: IOPub messages into output-stream cells and peer states.

A dispatch table maps each IOPub msg_type to a handler. Cells are keyed by
the msg_id of the execute_request that produced them; own cells are told
from others' by the session in the parent header. What the screen must act
on (execution count, crash reports, kernel restarts) is collected in a
``RouteResult``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol.events import EVENT_MSG_TYPE, client_name
from ipytui.widgets.bundle_view import BundleView, view_bundle
from ipytui.widgets.cell_view import CellView
from ipytui.widgets.mimebundle import RECOVERY_MIME, render_traceback
from ipytui.widgets.output_stream import OutputStream
from ipytui.widgets.peer_model import Peer

from .history_replay import HistoryReplay
from .iopub import coalesce_streams, parent_session, parent_type, parent_username
from .widget_models import WIDGET_VIEW_MIME, WidgetModels

DIED_ENAMES = {"KernelDied", "DeadKernelError", "WorkerDied"}
KERNEL_CELL = "kernel-output"


@dataclass
class RouteResult:
    execution_count: int | None = None
    peers_changed: bool = False
    recovery_reports: list[dict[str, Any]] = field(default_factory=list)
    deaths: list[dict[str, Any]] = field(default_factory=list)
    kernel_started: bool = False
    disk: dict[str, str] | None = None  # paused disk features -> why, when the kernel said
    events: list[dict[str, Any]] = field(default_factory=list)  # ipytui_event contents


class OutputRouter(HistoryReplay):
    def __init__(self, stream: OutputStream, *, own_session: str, display_name: str) -> None:
        self.stream = stream
        self.own_session = own_session
        self.display_name = display_name
        self.pending: deque[str] = deque()
        self._expected: dict[str, str] = {}
        self.peers: dict[str, Peer] = {}
        self.names: dict[str, str] = {}  # session -> display name, from presence
        self.seen_peer_time: dict[str, float] = {}
        self._failed: set[str] = set()
        self._result = RouteResult()
        self._handlers = {
            "status": self._status,
            "execute_input": self._execute_input,
            "stream": self._stream,
            "execute_result": self._execute_result,
            "display_data": self._display_data,
            "update_display_data": self._update_display_data,
            "clear_output": self._clear_output,
            "error": self._error,
            "ipytui_status": self._ipytui_status,
            "comm_open": self._comm,
            "comm_msg": self._comm,
            "comm_close": self._comm,
            EVENT_MSG_TYPE: self._event,
        }
        self.widgets = WidgetModels()
        self._widget_views: dict[str, list[Any]] = {}
        if own_session:
            self._note_peer(own_session, display_name)

    # -- entry point ------------------------------------------------------------------
    def _new_result(self) -> RouteResult:
        return RouteResult()

    def apply(self, messages: list[Any]) -> RouteResult:
        self._result = RouteResult()
        for msg in coalesce_streams(messages):
            session = parent_session(msg)
            if session:
                self._note_peer(session, parent_username(msg))
            handler = self._handlers.get(msg.msg_type)
            if handler is not None:
                handler(msg)
        self.stream.enforce_limit()
        return self._result

    def _ipytui_status(self, msg: Any) -> None:
        """The kernel's word on its disk writes (journal, checkpoints paused or resumed)."""
        disk = msg.content.get("disk")
        if isinstance(disk, dict):
            self._result.disk = {str(k): str(v) for k, v in disk.items()}

    # -- own queued cells ---------------------------------------------------------------
    def queue_own(self, local_id: str, code: str) -> CellView:
        cell = self.stream.add_cell(
            local_id,
            code=code,
            who=self.display_name,
            own=True,
            session=self.own_session,
            status="queued",
        )
        self.pending.append(local_id)
        self._set_peer_state(self.own_session)
        return cell

    def expect(self, msg_id: str, local_id: str) -> None:
        """The queued own cell ``local_id`` is the request ``msg_id`` (learned from the client)."""
        if local_id in self.pending:
            self._expected[msg_id] = local_id

    def _adopt(self, msg: Any) -> CellView | None:
        """The queued own cell this message's request belongs to, given its real id."""
        local_id = self._expected.pop(msg.parent_id, None)
        if local_id is None and parent_session(msg) == self.own_session and self.pending:
            local_id = self.pending[0]  # a client that does not report msg ids: FIFO
        if local_id is None or local_id not in self.pending:
            return None
        self.pending.remove(local_id)
        return self.stream.rekey(local_id, msg.parent_id)

    def drop_pending(self, local_id: str) -> bool:
        """Forget a queued own cell the kernel never started; True if it was pending."""
        if local_id in self.pending:
            self.pending.remove(local_id)
            self._set_peer_state(self.own_session)
            return True
        return False

    def abort_unfinished(self, status: str = "aborted") -> None:
        """Mark every running or queued cell as ended (the kernel restarted under them)."""
        for cell in self.stream.running_cells():
            cell.set_status(status)
        self.pending.clear()
        for session in self.peers:
            self._set_peer_state(session)

    # -- presence -------------------------------------------------------------------------
    def set_names(self, names: dict[str, str]) -> None:
        """Display names by session (presence): others' cells are attributed by them."""
        self.names = {s: n for s, n in names.items() if n}
        for cell in self.stream.cells.values():
            name = self.names.get(cell.session)
            if name and not cell.own and cell.who != name:
                cell.who = name
                cell.draw_header()

    def who(self, session: str, username: str) -> str:
        return self.names.get(session) or (client_name(username) if username else session[:8])

    # -- peers ----------------------------------------------------------------------------
    def _note_peer(self, session: str, username: str) -> None:
        self.seen_peer_time[session] = time.monotonic()
        if session in self.peers:
            return
        is_self = session == self.own_session
        name = self.display_name if is_self else self.who(session, username)
        self.peers[session] = Peer(session=session, name=name, is_self=is_self)
        self._result.peers_changed = True

    def _set_peer_state(self, session: str) -> None:
        peer = self.peers.get(session)
        if peer is None:
            return
        running = [
            c
            for c in self.stream.cells.values()
            if c.status == "running" and c.session == session
        ]
        queued = sum(
            1
            for c in self.stream.cells.values()
            if c.status == "queued" and c.session == session
        )
        if running:
            state = f"running [{running[-1].execution_count or ' '}]"
        elif queued:
            state = f"queued ({queued})"
        else:
            state = "idle"
        if peer.state != state:
            peer.state = state
            self._result.peers_changed = True

    # -- cells ------------------------------------------------------------------------------
    def _cell_for(self, msg: Any) -> CellView:
        cell_id = msg.parent_id or KERNEL_CELL
        cell = self.stream.cell(cell_id) or (self._adopt(msg) if msg.parent_id else None)
        if cell is not None:
            return cell
        session = parent_session(msg)
        own = bool(session) and session == self.own_session
        if not msg.parent_id:
            who, status = "kernel", "ok"
        else:
            who = self.display_name if own else self.who(session, parent_username(msg))
            status = "running" if parent_type(msg) == "execute_request" else "ok"
        return self.stream.add_cell(cell_id, who=who, own=own, session=session, status=status)

    def _execute_input(self, msg: Any) -> None:
        session = parent_session(msg)
        code = msg.content.get("code", "")
        count = msg.content.get("execution_count")
        cell = self._cell_for(msg)
        cell.session = session
        if code and cell.code != code:
            cell.set_code(code)
        cell.set_execution_count(count)
        cell.set_status("running")
        if isinstance(count, int):
            self._result.execution_count = count
        self._set_peer_state(session)

    def _status(self, msg: Any) -> None:
        state = msg.content.get("execution_state")
        if state == "starting":
            self._result.kernel_started = True
            return
        if state != "idle" or not msg.parent_id:
            return
        cell = self.stream.cell(msg.parent_id)
        if cell is not None and cell.status in ("running", "queued"):
            cell.set_status("error" if msg.parent_id in self._failed else "ok")
            self._failed.discard(msg.parent_id)
            self._set_peer_state(cell.session)

    def _stream(self, msg: Any) -> None:
        cell = self._cell_for(msg)
        name = msg.content.get("name", "stdout")
        self.stream.append_stream(cell.cell_id, name, msg.content.get("text", ""))

    def _execute_result(self, msg: Any) -> None:
        cell = self._cell_for(msg)
        content = msg.content
        count = content.get("execution_count")
        prompt = f"Out[{count}]:" if count is not None else "Out:"
        display_id = (content.get("transient") or {}).get("display_id")
        view = self._view(content)
        output = self.stream.add_output(
            cell.cell_id,
            view.content,
            kind="result",
            prompt=prompt,
            display_id=display_id,
            raw=view.raw,
        )
        self._watch_widget(content.get("data"), output)

    def _display_data(self, msg: Any) -> None:
        data = msg.content.get("data") or {}
        if RECOVERY_MIME in data:
            report = data[RECOVERY_MIME]
            self._result.recovery_reports.append(report if isinstance(report, dict) else {})
        shown = {k: v for k, v in data.items() if k != RECOVERY_MIME}
        if not shown:
            return
        cell = self._cell_for(msg)
        if RECOVERY_MIME in data and cell.status == "died":
            return  # its error already tells the story; the banner has the report
        display_id = (msg.content.get("transient") or {}).get("display_id")
        view = self._view({**msg.content, "data": shown})
        output = self.stream.add_output(
            cell.cell_id,
            view.content,
            kind="note" if RECOVERY_MIME in data else "display",
            display_id=display_id,
            raw=view.raw,
        )
        self._watch_widget(shown, output)

    # -- widgets ----------------------------------------------------------------------------
    def _watch_widget(self, data: Any, output: Any) -> None:
        """Remember an output showing a widget view, to redraw it when the model changes."""
        ref = data.get(WIDGET_VIEW_MIME) if isinstance(data, dict) else None
        model_id = ref.get("model_id") if isinstance(ref, dict) else None
        if isinstance(model_id, str) and output is not None:
            self._widget_views.setdefault(model_id, []).append((output, data))

    def _comm(self, msg: Any) -> None:
        changed = self.widgets.apply(msg.msg_type, msg.content)
        if msg.msg_type == "comm_close":
            self._widget_views.pop(msg.content.get("comm_id"), None)
        if changed is None:
            return
        for model_id in (changed, *self.widgets.containers_of(changed)):  # shown inline there
            live = [(o, d) for o, d in self._widget_views.get(model_id, []) if o.is_attached]
            self._widget_views[model_id] = live
            for output, data in live:
                output.set_body(self.widgets.view(data))

    def _update_display_data(self, msg: Any) -> None:
        display_id = (msg.content.get("transient") or {}).get("display_id")
        if display_id:
            view = self._view(msg.content)
            self.stream.update_display(display_id, view.content, view.raw)

    def _view(self, content: dict[str, Any]) -> BundleView:
        """How a message's bundle shows, in this stream's image mode."""
        data = content.get("data")
        metadata = content.get("metadata")
        if isinstance(data, dict) and WIDGET_VIEW_MIME in data:
            return BundleView(self.widgets.view(data), raw=None)
        return view_bundle(
            data if isinstance(data, dict) else {},
            metadata if isinstance(metadata, dict) else None,
            self.stream.images,
        )

    def _clear_output(self, msg: Any) -> None:
        cell = self.stream.cell(msg.parent_id)
        if cell is not None:
            cell.clear_output(wait=bool(msg.content.get("wait")))

    def _error(self, msg: Any) -> None:
        cell = self._cell_for(msg)
        self._failed.add(cell.cell_id)
        self.stream.add_output(cell.cell_id, render_traceback(msg.content), kind="error")
        if msg.content.get("ename") in DIED_ENAMES:
            cell.set_status("died")
            self._failed.discard(cell.cell_id)
            self._result.deaths.append(
                {
                    "ename": msg.content.get("ename"),
                    "evalue": msg.content.get("evalue", ""),
                    "execution_count": cell.execution_count,
                    "who": cell.who,
                }
            )

