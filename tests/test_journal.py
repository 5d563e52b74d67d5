"""The SQLite journal: history queries, replay, recovery, concurrency, bad databases."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from ipytui.kernel.supervisor.journal_writer import MAX_OUTPUT_BYTES, TRUNCATED_TEXT
from ipytui.kernel.supervisor.journal_writer import JournalWriter as Journal


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


def run_cell(journal: Journal, session: int, count: int, code: str, result: str | None = None,
             status: str = "ok") -> int:
    """Journal one finished cell the way the worker does."""
    cell = journal.cell_started(session, count, code, f"msg-{count}", "client-a", "alice")
    assert cell is not None
    if result is not None:
        journal.add_output(cell, "execute_result",
                           {"data": {"text/plain": result}, "execution_count": count})
    journal.cell_finished(cell, status, output_text=result)
    return cell


@pytest.fixture
def two_kernels(db: Path) -> tuple[Journal, Journal, int, int]:
    """Two journals on one file, as two kernel processes: cells interleaved in time."""
    first, second = Journal(db), Journal(db)
    s1 = first.open_session("kernel-1", pid=101, host="h", connection_file="/c1.json")
    s2 = second.open_session("kernel-2", pid=102, host="h", connection_file="/c2.json")
    run_cell(first, s1, 1, "a = 1")
    run_cell(second, s2, 1, "import math")
    run_cell(first, s1, 2, "a + 1", "2")
    run_cell(second, s2, 2, "math.pi", "3.141592653589793")
    run_cell(first, s1, 3, "print(a)")
    yield first, second, s1, s2
    first.close()
    second.close()


def test_default_path_follows_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTUI_DATA_DIR", str(tmp_path / "data"))
    journal = Journal()
    assert journal.path == tmp_path / "data" / "journal.sqlite3"
    assert journal.open_session("k") == 1
    assert journal.path.stat().st_mode & 0o777 == 0o600  # it holds the user's code
    mode = sqlite3.connect(journal.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_tail_spans_kernels_oldest_first(two_kernels: tuple[Journal, Journal, int, int]) -> None:
    first, second, s1, s2 = two_kernels
    assert second.history_tail(3) == [(s1, 2, "a + 1"), (s2, 2, "math.pi"), (s1, 3, "print(a)")]
    assert first.history_tail(2, output=True) == [
        (s2, 2, ("math.pi", "3.141592653589793")),
        (s1, 3, ("print(a)", None)),
    ]


def test_range_current_absolute_and_relative(two_kernels: tuple[Journal, Journal, int, int]) -> None:
    first, second, s1, s2 = two_kernels
    assert first.history_range(0, 1, None) == [(s1, 1, "a = 1"), (s1, 2, "a + 1"), (s1, 3, "print(a)")]
    assert first.history_range(0, 2, 3) == [(s1, 2, "a + 1")]
    assert second.history_range(s1, 2, 4, output=True) == [
        (s1, 2, ("a + 1", "2")),
        (s1, 3, ("print(a)", None)),
    ]
    # negative: counted back from the journal's current session
    assert second.history_range(-1, 1, 2) == [(s1, 1, "a = 1")]
    assert first.history_range(-1) == []  # nothing before the first session


def test_search_glob_unique_n_output(two_kernels: tuple[Journal, Journal, int, int]) -> None:
    first, second, s1, s2 = two_kernels
    run_cell(second, s2, 3, "a + 1", "2")
    assert [h[2] for h in first.history_search("a*")] == ["a = 1", "a + 1", "a + 1"]
    assert [h[2] for h in first.history_search("a ? 1")] == ["a = 1", "a + 1", "a + 1"]
    assert first.history_search("*math*") == [(s2, 1, "import math"), (s2, 2, "math.pi")]
    # unique keeps the latest occurrence of each input
    assert first.history_search("a*", unique=True) == [(s1, 1, "a = 1"), (s2, 3, "a + 1")]
    assert first.history_search("*", n=2) == [(s1, 3, "print(a)"), (s2, 3, "a + 1")]
    assert first.history_search("math.p?", output=True) == [(s2, 2, ("math.pi", "3.141592653589793"))]
    assert first.history_search("nothing*") == []


def test_history_request_dispatch(two_kernels: tuple[Journal, Journal, int, int]) -> None:
    first, _, s1, _ = two_kernels
    assert first.history_request(hist_access_type="tail", n=1) == [(s1, 3, "print(a)")]
    assert first.history_request(hist_access_type="range", session=0, start=3, stop=4) == [
        (s1, 3, "print(a)")
    ]
    assert len(first.history_request(hist_access_type="search", pattern="a*", unique=True)) == 2
    assert first.history_request(hist_access_type="bogus") == []


def test_raw_false_gives_transformed_code(db: Path) -> None:
    journal = Journal(db)
    session = journal.open_session("k")
    run_cell(journal, session, 1, "%time f()")
    assert journal.history_tail(1, raw=False) == [(session, 1, "__ipytui__.line_magic('time', 'f()')")]
    assert journal.history_tail(1) == [(session, 1, "%time f()")]


def test_silent_cells_are_journaled_but_not_history(db: Path) -> None:
    journal = Journal(db)
    session = journal.open_session("k")
    run_cell(journal, session, 1, "shown = 1")
    hidden = journal.cell_started(session, 1, "silent()", store_history=False)
    assert journal.history_tail(10) == [(session, 1, "shown = 1")]
    assert journal.history_range(0) == [(session, 1, "shown = 1")]
    assert [c["id"] for c in journal.unfinished_cells(session)] == [hidden]


def test_recent_cells_replay_with_outputs(two_kernels: tuple[Journal, Journal, int, int]) -> None:
    first, second, s1, s2 = two_kernels
    cell = first.cell_started(s1, 4, "for i in range(2): print(i)", "m4", "client-b", "bob")
    first.add_output(cell, "stream", {"name": "stdout", "text": "0\n"})
    first.add_output(cell, "stream", {"name": "stdout", "text": "1\n"})
    recent = second.recent_cells("kernel-1", 2)
    assert [c["code"] for c in recent] == ["print(a)", "for i in range(2): print(i)"]
    latest = recent[-1]
    assert (latest["username"], latest["client_session"], latest["msg_id"]) == ("bob", "client-b", "m4")
    assert latest["status"] is None and latest["ended"] is None  # still running
    assert latest["outputs"] == [
        {"msg_type": "stream", "content": {"name": "stdout", "text": "0\n"}},
        {"msg_type": "stream", "content": {"name": "stdout", "text": "1\n"}},
    ]
    earlier = first.recent_cells("kernel-1", 10)
    assert [c["execution_count"] for c in earlier] == [1, 2, 3, 4]
    assert earlier[1]["outputs"][0]["content"]["data"] == {"text/plain": "2"}
    assert [c["code"] for c in first.recent_cells("kernel-2", 10)] == ["import math", "math.pi"]
    assert first.recent_cells("no-such-kernel", 5) == []


def test_outputs_are_bounded_per_cell(db: Path) -> None:
    journal = Journal(db)
    session = journal.open_session("k")
    cell = journal.cell_started(session, 1, "spam()")
    line = "x" * 1000 + "\n"
    for _ in range(200):
        journal.add_output(cell, "stream", {"name": "stdout", "text": line})
    outputs = journal.recent_cells("k", 1)[0]["outputs"]
    kept = sum(len(o["content"]["text"]) for o in outputs[:-1])
    assert kept <= MAX_OUTPUT_BYTES
    assert len(outputs) < 200
    assert outputs[-1] == {"msg_type": "stream", "content": {"name": "stderr", "text": TRUNCATED_TEXT}}
    # another writer (a fresh Journal) sees the budget as spent and adds nothing
    Journal(db).add_output(cell, "stream", {"name": "stdout", "text": "late\n"})
    assert len(Journal(db).recent_cells("k", 1)[0]["outputs"]) == len(outputs)
    # a cell under budget continues where another writer left off
    small = journal.cell_started(session, 2, "two()")
    journal.add_output(small, "stream", {"name": "stdout", "text": "a"})
    Journal(db).add_output(small, "stream", {"name": "stdout", "text": "b"})
    texts = [o["content"]["text"] for o in journal.recent_cells("k", 1)[0]["outputs"]]
    assert texts == ["a", "b"]


def test_recovery_queries(db: Path) -> None:
    journal = Journal(db)
    old = journal.open_session("kernel-x", pid=7, host="box", connection_file="/k.json")
    journal.end_session(old, "shutdown")
    session = journal.open_session("kernel-x", pid=8, host="box", connection_file="/k.json")
    run_cell(journal, session, 1, "a = 1")
    run_cell(journal, session, 2, "b = 2")
    run_cell(journal, session, 3, "c = 3")
    crashing = journal.cell_started(session, 4, "crash()", "m4", "client-z", "zoe")
    # a new journal, as `ipytui recover` after the machine went down
    reader = Journal(db)
    last = reader.last_session("kernel-x")
    assert last is not None
    assert (last["id"], last["pid"], last["ended"], last["connection_file"]) == (session, 8, None, "/k.json")
    assert reader.session(old)["end_reason"] == "shutdown"  # type: ignore[index]
    suspects = reader.unfinished_cells(session)
    assert [(c["id"], c["code"], c["username"]) for c in suspects] == [(crashing, "crash()", "zoe")]
    assert [c["code"] for c in reader.cells_since(session, 2)] == ["c = 3", "crash()"]
    reader.cell_finished(crashing, "crashed", ename="KernelDied")
    assert reader.unfinished_cells(session) == []
    assert reader.cell(crashing)["status"] == "crashed"  # type: ignore[index]
    assert reader.last_session("nobody") is None


def _write_cells(path: str, kernel_id: str, count: int, start: multiprocessing.synchronize.Event,
                 journal: Journal | None = None) -> None:
    """Child process body: journal ``count`` cells; exit 1 if any write failed."""
    journal = journal or Journal(path)
    session = journal.open_session(kernel_id)
    start.wait(10)
    ok = session is not None
    for n in range(1, count + 1):
        cell = journal.cell_started(session, n, f"{kernel_id}_{n} = {n}")
        journal.add_output(cell, "stream", {"name": "stdout", "text": f"{n}\n"})
        journal.cell_finished(cell, "ok", output_text=str(n))
        ok = ok and cell is not None
    raise SystemExit(0 if ok else 1)


def test_two_processes_write_at_once(db: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    inherited = Journal(db)
    inherited.open_session("parent")  # the parent's connection exists before the fork
    start = ctx.Event()
    count = 150
    procs = [
        ctx.Process(target=_write_cells, args=(str(db), "child-a", count, start, inherited)),
        ctx.Process(target=_write_cells, args=(str(db), "child-b", count, start)),
    ]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    inherited.history_tail(1)  # the parent's own connection still works after the children
    for kernel in ("child-a", "child-b"):
        cells = inherited.recent_cells(kernel, 1000)
        assert [c["execution_count"] for c in cells] == list(range(1, count + 1))
        assert all(c["status"] == "ok" and len(c["outputs"]) == 1 for c in cells)
    assert len(inherited.history_search("child-?_*")) == 2 * count


def test_corrupt_database_is_moved_aside(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    db.write_bytes(b"this is not an sqlite database at all" * 100)
    with caplog.at_level(logging.ERROR):
        journal = Journal(db)
        session = journal.open_session("k")
    assert session == 1
    assert run_cell(journal, session, 1, "x = 1")
    assert journal.history_tail(1) == [(session, 1, "x = 1")]
    assert list(db.parent.glob("journal.sqlite3.corrupt-*"))
    assert "unreadable" in caplog.text


def test_locked_database_never_raises(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(db, busy_timeout=0.05)
    session = journal.open_session("k")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.WARNING):
        cell = journal.cell_started(session, 1, "x = 1")
        assert cell is None
        journal.add_output(cell, "stream", {"name": "stdout", "text": "x"})
        journal.cell_finished(cell, "ok")
        journal.add_output(12345, "stream", {"name": "stdout", "text": "x"})
        assert journal.history_tail(5) == []  # WAL: readers go on while a writer holds the lock
    assert "journal cell_started failed" in caplog.text
    blocker.execute("ROLLBACK")
    blocker.close()
    assert run_cell(journal, session, 1, "x = 1")  # carries on once the lock is gone
    assert journal.history_tail(1) == [(session, 1, "x = 1")]


def test_threads_get_their_own_connections(db: Path) -> None:
    import threading

    journal = Journal(db)
    session = journal.open_session("k")
    cell = journal.cell_started(session, 1, "loop()")
    errors: list[BaseException] = []

    def flush(name: str) -> None:
        try:
            for i in range(50):
                journal.add_output(cell, "stream", {"name": name, "text": f"{i}\n"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flush, args=(n,)) for n in ("stdout", "stderr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    outputs = journal.recent_cells("k", 1)[0]["outputs"]
    assert len(outputs) == 100


def test_batch_commits_its_writes_together(db: Path) -> None:
    """The recorder's group commit: nothing of a batch is visible until it ends."""
    writer, reader = Journal(db), Journal(db)
    session = writer.open_session("k")
    with writer.batch(durable=True):
        run_cell(writer, session, 1, "a = 1")
        run_cell(writer, session, 2, "b = 2")
        assert reader.history_tail(5) == []
    assert reader.history_tail(5) == [(session, 1, "a = 1"), (session, 2, "b = 2")]
    with pytest.raises(ZeroDivisionError), writer.batch():
        run_cell(writer, session, 3, "c = 3")
        raise ZeroDivisionError  # a bug mid-batch rolls the batch back and is not swallowed
    assert [row[1] for row in reader.history_tail(5)] == [1, 2]
    assert writer.cell_started(session, 3, "c = 3") is not None  # the connection still works
