"""The SQLite journal: sessions, cells and their outputs, shared by every kernel.

One database file in the user data dir serves three readers:
- history (``history_request``, ``%history``): cells numbered by
  (session id, execution_count), Jupyter's history_reply tuples;
- crash forensics and recovery: a cell's start is committed durably (fsync)
  within moments of its execute_input, so after any crash, the machine's
  included, the journal says which cell was running and who ran it;
- late joiners: the last cells of a kernel with their (bounded) outputs.

Several kernel processes write at once: WAL mode, a busy timeout, one
connection per thread and per process (a forked snapshot child opens its own;
it never touches the parent's). Every public method swallows database errors
after logging them: history must never break execution.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the events table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions(
    id INTEGER PRIMARY KEY,
    kernel_id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    end_reason TEXT,
    pid INTEGER,
    host TEXT,
    connection_file TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_kernel ON sessions(kernel_id, id);
CREATE TABLE IF NOT EXISTS cells(
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    execution_count INTEGER NOT NULL,
    in_history INTEGER NOT NULL DEFAULT 1,
    msg_id TEXT,
    client_session TEXT,
    username TEXT,
    code TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    status TEXT,
    ename TEXT,
    output_text TEXT
);
CREATE INDEX IF NOT EXISTS cells_by_session ON cells(session_id, execution_count);
CREATE INDEX IF NOT EXISTS cells_unfinished ON cells(session_id) WHERE ended IS NULL;
CREATE TABLE IF NOT EXISTS outputs(
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    seq INTEGER NOT NULL,
    msg_type TEXT NOT NULL,
    content_json TEXT NOT NULL,
    PRIMARY KEY(cell_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    content_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events(session_id, time);
"""

_CELL_COLUMNS = (
    "id, session_id, execution_count, in_history, msg_id, client_session, username, "
    "code, started, ended, status, ename, output_text"
)

# Connections inherited through fork() are never closed in the child: closing
# them could checkpoint or delete the parent's WAL. Keeping a reference here
# stops the garbage collector from closing them.
_ABANDONED: list[sqlite3.Connection] = []

T = TypeVar("T")
History = list[tuple[Any, ...]]


def guarded(default: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn sqlite/OS errors of a journal method into a log line and ``default``."""

    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def guarded(self: Journal, *args: Any, **kwargs: Any) -> T:
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                self._report(method.__name__, exc)
                return default() if callable(default) else default

        return guarded

    return wrap


class Journal:
    """Thread- and process-safe access to the journal database at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 3.0,
        durable_starts: bool = True,
    ) -> None:
        if path is None:
            from ipytui.kernel.protocol.paths import journal_path

            path = journal_path()
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.durable_starts = durable_starts
        self.session_id: int | None = None  # "current" session for range queries
        self._local = threading.local()
        self._lock = threading.Lock()
        self._mine: list[tuple[int, sqlite3.Connection]] = []
        self._budgets: dict[int, list[int]] = {}  # cell id -> [next seq, bytes, rows]
        self._last_error = ""
        self.failures = 0  # database errors so far (a writer compares before and after)
        self.last_error: BaseException | None = None
        self._schema_ready = False

    # -- connections -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        if conn is not None:
            _ABANDONED.append(conn)
            self._schema_ready = False
            self._budgets = {}
        conn = self._connect()
        local.conn, local.pid = conn, os.getpid()
        with self._lock:
            self._mine.append((os.getpid(), conn))
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked or unreadable: the file itself may be fine
            self._quarantine(exc)
            return self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        with contextlib.suppress(OSError):  # it holds the user's code; -wal/-shm follow its mode
            self.path.chmod(0o600)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            if not self._schema_ready:
                self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif version > SCHEMA_VERSION:
            log.warning("journal %s has schema %d, newer than %d", self.path, version, SCHEMA_VERSION)
        self._schema_ready = True

    def _quarantine(self, exc: Exception) -> None:
        """Move a corrupt database aside so a fresh one can take its place."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error("journal %s is unreadable (%s); moved to %s", self.path, exc, aside)
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(f"{aside}{suffix}")

    def _report(self, operation: str, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = exc
        message = f"{type(exc).__name__}: {exc}"
        level = logging.DEBUG if message == self._last_error else logging.WARNING
        self._last_error = message
        log.log(level, "journal %s failed (%s); carrying on without it", operation, message)

    def close(self) -> None:
        """Close the connections this process opened through this object."""
        with self._lock:
            mine = [c for pid, c in self._mine if pid == os.getpid()]
            self._mine = [(p, c) for p, c in self._mine if p != os.getpid()]
        for conn in mine:
            try:
                conn.close()
            except sqlite3.Error as exc:  # another thread may be mid-statement
                self._report("close", exc)
        self._local = threading.local()

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self._conn().execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- sessions ----------------------------------------------------------

    @guarded(None)
    def session(self, session_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return rows[0] if rows else None

    @guarded(None)
    def last_session(self, kernel_id: str) -> dict[str, Any] | None:
        """The newest session of ``kernel_id`` (ended or not), or None."""
        rows = self._rows(
            "SELECT * FROM sessions WHERE kernel_id = ? ORDER BY id DESC LIMIT 1", (kernel_id,)
        )
        return rows[0] if rows else None

    @guarded(None)
    def cell(self, cell_id: int) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {_CELL_COLUMNS} FROM cells WHERE id = ?", (cell_id,))
        return rows[0] if rows else None

    def _outputs(self, cell_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        found: dict[int, list[dict[str, Any]]] = {i: [] for i in cell_ids}
        if not cell_ids:
            return found
        marks = ",".join("?" * len(cell_ids))
        rows = self._conn().execute(
            f"SELECT cell_id, msg_type, content_json FROM outputs WHERE cell_id IN ({marks}) "
            "ORDER BY cell_id, seq",
            tuple(cell_ids),
        )
        for cell_id, msg_type, content in rows:
            found[cell_id].append({"msg_type": msg_type, "content": json.loads(content)})
        return found

    @guarded(list)
    def recent_cells(self, kernel_id: str, n: int = 20) -> list[dict[str, Any]]:
        """The last ``n`` history cells of a kernel, oldest first, with ``outputs``."""
        cells = self._rows(
            "SELECT * FROM (SELECT c.* FROM cells c JOIN sessions s ON s.id = c.session_id "
            "WHERE s.kernel_id = ? AND c.in_history ORDER BY c.id DESC LIMIT ?) ORDER BY id",
            (kernel_id, n),
        )
        outputs = self._outputs([c["id"] for c in cells])
        for cell in cells:
            cell["outputs"] = outputs[cell["id"]]
        return cells

    @guarded(list)
    def recent_events(self, kernel_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        """A kernel's shared events (``ipytui_event`` contents) since ``since``, oldest first."""
        rows = self._conn().execute(
            "SELECT e.content_json FROM events e JOIN sessions s ON s.id = e.session_id "
            "WHERE s.kernel_id = ? AND e.time >= ? ORDER BY e.id DESC LIMIT 200",
            (kernel_id, since),
        )
        return [json.loads(content) for (content,) in rows][::-1]

    @guarded(list)
    def unfinished_cells(self, session_id: int) -> list[dict[str, Any]]:
        """Cells of a session that started but never finished (the crash suspects)."""
        return self._rows(
            f"SELECT {_CELL_COLUMNS} FROM cells WHERE session_id = ? AND ended IS NULL ORDER BY id",
            (session_id,),
        )

    @guarded(list)
    def cells_since(self, session_id: int, execution_count: int) -> list[dict[str, Any]]:
        """Cells of a session after ``execution_count``: candidates to replay after a restore."""
        return self._rows(
            f"SELECT {_CELL_COLUMNS} FROM cells WHERE session_id = ? AND execution_count > ? "
            "ORDER BY id",
            (session_id, execution_count),
        )

    # -- history (Jupyter history_request semantics) --------------------------

    def _entries(self, rows: list[tuple[Any, ...]], output: bool, raw: bool) -> History:
        if not raw:
            from ipytui.kernel.protocol.syntax import transform_cell

            rows = [(s, line, transform_cell(code), out) for s, line, code, out in rows]
        if output:
            return [(s, line, (code, out)) for s, line, code, out in rows]
        return [(s, line, code) for s, line, code, _ in rows]

    @guarded(list)
    def history_tail(self, n: int = 10, output: bool = False, raw: bool = True) -> History:
        """The last ``n`` cells across all sessions and kernels, oldest first."""
        rows = self._conn().execute(
            "SELECT * FROM (SELECT session_id, execution_count, code, output_text, id FROM cells "
            "WHERE in_history ORDER BY id DESC LIMIT ?) ORDER BY id",
            (n,),
        ).fetchall()
        return self._entries([r[:4] for r in rows], output, raw)

    def resolve_session(self, session: int) -> int | None:
        """Spec session numbers: >0 absolute, 0 current, <0 counted back from current."""
        if session > 0:
            return session
        if self.session_id is None:
            return None
        if session == 0:
            return self.session_id
        row = self._conn().execute(
            "SELECT id FROM sessions WHERE id < ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (self.session_id, -session - 1),
        ).fetchone()
        return row[0] if row else None

    @guarded(list)
    def history_range(
        self, session: int = 0, start: int = 1, stop: int | None = None, output: bool = False,
        raw: bool = True,
    ) -> History:
        """Cells ``start <= execution_count < stop`` of a session (``stop`` falsy: to the end)."""
        session_id = self.resolve_session(session)
        if session_id is None:
            return []
        rows = self._conn().execute(
            "SELECT session_id, execution_count, code, output_text FROM cells "
            "WHERE session_id = ? AND in_history AND execution_count >= ? "
            "AND (? IS NULL OR execution_count < ?) ORDER BY execution_count, id",
            (session_id, start or 0, stop or None, stop or None),
        ).fetchall()
        return self._entries(rows, output, raw)

    @guarded(list)
    def history_search(
        self, pattern: str = "*", n: int | None = None, unique: bool = False,
        output: bool = False, raw: bool = True,
    ) -> History:
        """Cells whose code matches a glob (``*``, ``?``); the last ``n`` if given."""
        glob = pattern or "*"  # SQLite's GLOB speaks the shell's glob dialect
        where = "in_history AND code GLOB ?"
        params: list[Any] = [glob]
        if unique:
            where += " AND id IN (SELECT MAX(id) FROM cells WHERE in_history AND code GLOB ? GROUP BY code)"
            params.append(glob)
        sql = f"SELECT session_id, execution_count, code, output_text, id FROM cells WHERE {where}"
        if n:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            params.append(n)
        else:
            sql += " ORDER BY id"
        rows = self._conn().execute(sql, tuple(params)).fetchall()
        return self._entries([r[:4] for r in rows], output, raw)

    def history_request(
        self, hist_access_type: str = "tail", output: bool = False, raw: bool = True,
        session: int = 0, start: int = 1, stop: int | None = None, n: int | None = None,
        pattern: str = "*", unique: bool = False, **_ignored: Any,
    ) -> History:
        """Answer a history_request's content: the ``history`` list of the reply."""
        if hist_access_type == "tail":
            return self.history_tail(n or 10, output=output, raw=raw)
        if hist_access_type == "range":
            return self.history_range(session, start, stop, output=output, raw=raw)
        if hist_access_type == "search":
            return self.history_search(pattern, n=n, unique=unique, output=output, raw=raw)
        return []
