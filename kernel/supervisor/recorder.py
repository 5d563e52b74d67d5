"""Journal writes off the supervisor's loop: a thread fed raw frames through a queue.

The supervisor must forward messages without waiting on SQLite, so it only
enqueues; this thread parses and writes, in arrival order. What arrives
within GATHER seconds is written as one transaction (group commit), so a
burst of cells costs one disk flush, not one per cell: a cell's start is
committed durably within about GATHER seconds of its execute_input.

When the disk refuses a batch (full, I/O error) the journal is *paused*
(other failures, a locked database, cost only their batch, as before):
batches are dropped for RETRY seconds, then tried again, and ``health``
tells the clients both ways. The queue is bounded for outputs (a client
printing faster than the disk writes would otherwise grow it without end):
past MAX_QUEUED waiting items, outputs are not journaled; cell starts and
ends always are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from typing import Any

from ipytui.kernel.protocol.atomic import is_disk_error
from ipytui.kernel.protocol.wire import split_identities
from ipytui.kernel.supervisor.disk_health import DiskHealth
from ipytui.kernel.supervisor.journal_writer import JournalWriter as Journal

log = logging.getLogger("ipytui.supervisor")

_KEPT = {"stream", "execute_result", "display_data", "error", "update_display_data", "clear_output"}
_TEXT_LIMIT = 64 * 1024
GATHER = 0.02  # seconds a batch stays open after its first item (group commit)
RETRY = 5.0  # seconds the journal stays paused after the disk refused a batch
MAX_QUEUED = 10_000  # waiting items past which outputs are not journaled


class Recorder(threading.Thread):
    """Owns one Journal connection; records sessions, cells and outputs."""

    def __init__(self, journal: Journal, session_id: int | None,
                 health: DiskHealth | None = None) -> None:
        super().__init__(name="ipytui-journal", daemon=True)
        self.journal = journal
        self.session_id = session_id
        self.health = health or DiskHealth()
        self.paused_until = 0.0  # monotonic time before which batches are dropped
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._cells: dict[str, int | None] = {}  # request msg_id -> journal cell id
        self._texts: dict[str, list[str]] = {}

    # -- called from the supervisor's loop (cheap) --------------------------
    def iopub(self, frames: list[bytes]) -> None:
        if self._queue.qsize() < MAX_QUEUED:
            self._queue.put(("iopub", frames))

    def started(self, request: dict[str, Any], count: int) -> None:
        self._queue.put(("started", (request, count)))

    def finished(self, msg_id: str, status: str, ename: str | None = None) -> None:
        self._queue.put(("finished", (msg_id, status, ename)))

    def output(self, msg_id: str, msg_type: str, content: dict[str, Any]) -> None:
        """An output the supervisor itself published for a cell (a crash's error)."""
        self._queue.put(("output", (msg_id, msg_type, content)))

    def event(self, content: dict[str, Any]) -> None:
        """A shared event (crash, restart, restore…) for the journal."""
        self._queue.put(("event", content))

    def wait_written(self, timeout: float = 1.0) -> None:
        """Block (bounded) until everything queued so far is in the journal."""
        done = threading.Event()
        self._queue.put(("marker", done))
        done.wait(timeout)

    def stop(self) -> None:
        self._queue.put(None)
        self.join(timeout=5)

    # -- the thread ---------------------------------------------------------
    def run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0] is not None and batch[0][0] != "marker":
                time.sleep(GATHER)  # let the rest of the burst arrive: one commit for all
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            if not self._write(batch):
                return

    def _write(self, batch: list[tuple[str, Any] | None]) -> bool:
        """Record a batch in one transaction; False once the stop sentinel is in it."""
        items = batch[: batch.index(None)] if None in batch else batch
        markers = [payload for kind, payload in items if kind == "marker"]
        if time.monotonic() >= self.paused_until:
            self._record(items)
        for done in markers:  # set only once the batch is committed (or dropped)
            done.set()
        return len(items) == len(batch)

    def _record(self, items: list[tuple[str, Any]]) -> None:
        """One transaction; a disk error pauses the journal for RETRY seconds."""
        journal = self.journal
        failures = journal.failures
        with journal.batch(durable=any(kind == "started" for kind, _ in items)):
            for kind, payload in items:
                if kind == "marker":
                    continue
                try:
                    getattr(self, f"_on_{kind}")(payload)
                except Exception:  # noqa: BLE001 - history must never break the kernel
                    log.exception("journal write failed")
        error = journal.last_error if journal.failures != failures else None
        if error is not None and is_disk_error(error):
            self.paused_until = time.monotonic() + RETRY
            self.health.failed("journal", error)
        elif error is None:
            self.health.ok("journal")

    def _on_started(self, payload: tuple[dict[str, Any], int]) -> None:
        request, count = payload
        header, content = request["header"], request["content"]
        if self.session_id is None:
            return
        store = bool(content.get("store_history", True)) and not content.get("silent", False)
        cell_id = self.journal.cell_started(
            self.session_id, count, str(content.get("code", "")), msg_id=header.get("msg_id"),
            client_session=header.get("session"), username=header.get("username"),
            store_history=store)
        self._cells[header.get("msg_id", "")] = cell_id
        self._texts[header.get("msg_id", "")] = []

    def _on_iopub(self, frames: list[bytes]) -> None:
        _, rest = split_identities(frames)
        header = json.loads(rest[1])
        msg_type = header.get("msg_type")
        if msg_type not in _KEPT:
            return
        parent_id = json.loads(rest[2]).get("msg_id", "")
        cell_id = self._cells.get(parent_id)
        if cell_id is None:
            return
        content = json.loads(rest[4])
        self.journal.add_output(cell_id, msg_type, content)
        if msg_type == "execute_result":
            text = content.get("data", {}).get("text/plain", "")
            if isinstance(text, str):
                self._texts[parent_id].append(text[:_TEXT_LIMIT])

    def _on_output(self, payload: tuple[str, str, dict[str, Any]]) -> None:
        msg_id, msg_type, content = payload
        self.journal.add_output(self._cells.get(msg_id), msg_type, content)

    def _on_event(self, content: dict[str, Any]) -> None:
        self.journal.add_event(self.session_id, content)

    def _on_finished(self, payload: tuple[str, str, str | None]) -> None:
        msg_id, status, ename = payload
        cell_id = self._cells.pop(msg_id, None)
        texts = self._texts.pop(msg_id, [])
        if cell_id is not None:
            self.journal.cell_finished(cell_id, status, ename, "\n".join(texts) or None)
