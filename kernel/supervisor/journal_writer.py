"""The supervisor's writes to the journal: sessions, cells as they start and
end, and their outputs within a per-cell budget (the reads are shared, in
``ipytui.kernel.protocol.journal``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from ipytui.kernel.protocol.journal import Journal, guarded

MAX_OUTPUT_BYTES = 64 * 1024  # per cell, kept for replay; the rest is dropped
MAX_OUTPUT_ROWS = 500
TRUNCATED_TEXT = "[ipytui journal: output truncated, only the first 64 KB are kept]\n"
_TRUNCATED_JSON = json.dumps({"name": "stderr", "text": TRUNCATED_TEXT})


class JournalWriter(Journal):
    """A journal that also records: what the supervisor (and tests) write with."""

    @guarded(None)
    def open_session(
        self, kernel_id: str, pid: int | None = None, host: str | None = None,
        connection_file: str | None = None,
    ) -> int | None:
        """Record a kernel start; the new id becomes this journal's current session."""
        cursor = self._conn().execute(
            "INSERT INTO sessions(kernel_id, started, pid, host, connection_file) "
            "VALUES (?, ?, ?, ?, ?)",
            (kernel_id, time.time(), pid, host, str(connection_file) if connection_file else None),
        )
        self.session_id = int(cursor.lastrowid)
        return self.session_id

    @guarded(None)
    def end_session(self, session_id: int, reason: str = "shutdown") -> None:
        """Mark a session as ended; a session never ended means an unclean stop."""
        self._conn().execute(
            "UPDATE sessions SET ended = ?, end_reason = ? WHERE id = ?",
            (time.time(), reason, session_id),
        )

    @contextlib.contextmanager
    def batch(self, durable: bool = False) -> Iterator[None]:
        """Run this thread's writes in one transaction: one commit, one fsync if durable.

        A burst of cells then costs one disk flush, not one per start. On any
        database error the batch's writes are logged and dropped, like every
        other journal error.
        """
        try:
            conn = self._conn()
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as exc:
            self._report("batch", exc)
            yield
            return
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if not isinstance(exc, (sqlite3.Error, OSError)):
                raise
            self._report("batch", exc)
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=NORMAL")

    @guarded(None)
    def cell_started(
        self, session_id: int, execution_count: int, code: str, msg_id: str | None = None,
        client_session: str | None = None, username: str | None = None,
        store_history: bool = True,
    ) -> int | None:
        """Record a cell before it runs; committed (fsynced if durable) on return.

        None when the journal is unavailable; the other cell methods accept that None.
        """
        conn = self._conn()
        durable = self.durable_starts and not conn.in_transaction  # a batch decides for itself
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            cursor = conn.execute(
                "INSERT INTO cells(session_id, execution_count, in_history, msg_id, "
                "client_session, username, code, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, execution_count, int(store_history), msg_id, client_session,
                 username, code, time.time()),
            )
        finally:
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")
        return int(cursor.lastrowid)

    @guarded(None)
    def cell_finished(
        self, cell_id: int | None, status: str, ename: str | None = None,
        output_text: str | None = None,
    ) -> None:
        """Record how a cell ended: 'ok', 'error', 'aborted' or 'crashed'."""
        if cell_id is None:
            return
        self._conn().execute(
            "UPDATE cells SET ended = ?, status = ?, ename = ?, output_text = ? WHERE id = ?",
            (time.time(), status, ename, output_text, cell_id),
        )
        with self._lock:
            self._budgets.pop(cell_id, None)

    @guarded(None)
    def add_event(self, session_id: int | None, content: dict[str, Any]) -> None:
        """Keep a shared event (an ``ipytui_event`` content) for replay to late joiners."""
        if session_id is None:
            return
        self._conn().execute(
            "INSERT INTO events(session_id, time, kind, content_json) VALUES (?, ?, ?, ?)",
            (session_id, float(content.get("time") or time.time()), str(content.get("event")),
             json.dumps(content, ensure_ascii=False, default=repr)),
        )

    @guarded(None)
    def add_output(self, cell_id: int | None, msg_type: str, content: dict[str, Any]) -> None:
        """Keep an IOPub output of a cell for replay, up to the per-cell budget."""
        if cell_id is None:
            return
        text = json.dumps(content, ensure_ascii=False, default=repr)
        with self._lock:
            budget = self._budgets.get(cell_id)
        if budget is None:
            budget = self._load_budget(cell_id)
        with self._lock:
            seq, used, rows = budget
            if used < 0:
                return  # already truncated
            if used + len(text) > MAX_OUTPUT_BYTES or rows >= MAX_OUTPUT_ROWS:
                msg_type, text = "stream", _TRUNCATED_JSON
                budget[:] = [seq + 1, -1, rows + 1]
            else:
                budget[:] = [seq + 1, used + len(text), rows + 1]
        self._conn().execute(
            "INSERT OR REPLACE INTO outputs(cell_id, seq, msg_type, content_json) "
            "VALUES (?, ?, ?, ?)",
            (cell_id, seq, msg_type, text),
        )

    def _load_budget(self, cell_id: int) -> list[int]:
        """[next seq, bytes used (-1: truncated), rows] of a cell another writer started."""
        seq, used, rows, truncated = self._conn().execute(
            "SELECT COALESCE(MAX(seq) + 1, 0), COALESCE(SUM(length(content_json)), 0), COUNT(*), "
            "COALESCE(MAX(content_json = ?), 0) FROM outputs WHERE cell_id = ?",
            (_TRUNCATED_JSON, cell_id),
        ).fetchone()
        budget = [seq, -1 if truncated else used, rows]
        with self._lock:
            return self._budgets.setdefault(cell_id, budget)
