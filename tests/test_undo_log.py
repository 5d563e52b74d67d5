"""The undo log: cells that can be replayed take no restore point (issue 22).

Unit tests of the admission test (kernel/worker/replayable.py), then the real
kernel through jupyter_client: logged cells are undone one by one to exactly
the states a plain namespace goes through, a crash after them replays them,
a cell that failed halfway makes the next one take a point, and a pause takes
the point the logged cells skipped. Cells are sent pipelined where a test
needs them logged: the worker takes the skipped point after a pause
(``CONSOLIDATE_SECONDS``), never while the next request waits.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import pytest
from conftest import wait_until
from ipytui.kernel.supervisor.restore_points import Logged, RestoreChain, RestorePoint
from ipytui.kernel.supervisor.undo_target import UndoChoice, UndoRequest, choose
from ipytui.kernel.worker.replayable import replayable
from jupyter_client.blocking import BlockingKernelClient
from test_protection import T, _argv, _client, _crash_report, _ok, _run, _snapshots_of_worker

pytestmark = pytest.mark.timeout(120)

NAMESPACE = {"x": 0, "lst": [1, 2], "d": {"a": 1}, "s": {1}, "arr": np.ones(3), "obj": object()}


@pytest.mark.parametrize(
    "code",
    [
        "x = 5",
        "x += 1; lst.append(x); d['n'] = x",
        "del x",
        "lst[0] = -1; lst.insert(0, 'a'); lst.extend((3, 4)); lst.pop(); lst.reverse()",
        "d.update({'z': 0}); d.setdefault('w', []); del d['a']",
        "s.add(4); s.discard(1)",
        "a, b = x, 'b'; t = (1, 2) + (3,); u = [0] * 3; v = -x ** 2 / 3",
        "lst.append(obj); y = arr",  # references are stored, never operated on
        "name = 'x%d' % x; ok = x < 3 and 'yes'",
        "pass",
    ],
)
def test_replayable_cells(code: str) -> None:
    assert replayable(code, NAMESPACE)


@pytest.mark.parametrize(
    "code",
    [
        "arr += 1",  # an ndarray: its __iadd__ is not ours to judge
        "x",  # a last expression is displayed (repr is user code; _ changes)
        "lst.pop()",  # its value would be displayed
        "print(x)",  # a call
        "y = len(lst)",  # a call, even of a builtin (the name may be rebound)
        "y = lst[0] + 1",  # an element of unknown type in an operation
        "d[obj] = 1",  # a key of another type: its __hash__ is user code
        "y = obj.attr",  # an attribute read may be a property
        "y = [i for i in lst]",  # a comprehension
        "y = f'{x}'",  # formatting
        "import os",
        "for i in lst: pass",
        "lst.sort()",  # compares elements
        "y = 1 in lst",  # compares elements
        "q = undefined_name",  # fails: nothing to log
        "lst.append(1, 2)",  # wrong arity
        "x = 1\n" * 2000,  # too long to ship
    ],
)
def test_cells_that_take_a_point(code: str) -> None:
    assert not replayable(code, NAMESPACE)


def test_a_dict_with_a_key_of_another_type_takes_a_point() -> None:
    class Key:
        def __hash__(self) -> int:
            return 1

    assert not replayable("d['k'] = 1", {"d": {Key(): 0}})
    assert replayable("d['k'] = 1", {"d": {1: 0, "j": 2}})
    assert replayable("d = {}; d['k'] = 1", {})  # a fresh dict has only its own keys


# -- the real kernel ----------------------------------------------------------------
SETUP = "import numpy as np; arr = np.arange(4); x = 0; lst = [1, 2]; d = {'a': 1}; s = {1}; y = 'y'"
CELLS = [
    "x = 5",
    "x += 1; lst.append(x); d['n'] = x",
    "del y",
    "lst[0] = -1; lst.insert(0, 'a'); lst.pop(); lst.reverse()",
    "d.update({'z': 0}); del d['a']",
    "s.add(4); s.discard(1)",
    "lst, x = x, lst; t = (1, 2) + (3,)",
    "big = arr",  # a reference to an object the log does not copy
]
# Read through user_expressions, so that reading is not a cell %undo would take back.
SHOW = "repr(sorted((k, v) for k, v in globals().items() if k in NAMES))"


def _expected_states() -> list[str]:
    """The state after SETUP and after each cell, as SHOW prints it, computed here."""
    ns: dict[str, Any] = {}
    exec(SETUP, ns)  # noqa: S102 - the test's own cells
    states = []
    for cell in ["", *CELLS]:
        exec(cell, ns)  # noqa: S102
        items = sorted((k, v) for k, v in ns.items() if k in _names())
        states.append(repr(repr(items)))
    return states


def _names() -> set[str]:
    return {"x", "lst", "d", "s", "y", "t", "big", "arr"}


def _pipelined(kc: BlockingKernelClient, cells: list[str]) -> list[dict[str, Any]]:
    """Send every cell at once; the replies in order (each ok) with their stdout."""
    ids = [kc.execute(code, stop_on_error=False) for code in cells]
    replies: dict[str, dict[str, Any]] = {}
    out: dict[str, str] = {i: "" for i in ids}
    deadline = time.monotonic() + T
    while len(replies) < len(ids):
        assert time.monotonic() < deadline, replies
        msg = kc.get_shell_msg(timeout=T)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    idle = set()
    while idle != set(ids):
        assert time.monotonic() < deadline, idle
        msg = kc.get_iopub_msg(timeout=T)
        parent = msg["parent_header"].get("msg_id")
        if parent in out and msg["msg_type"] == "stream":
            out[parent] += msg["content"]["text"]
        if parent in out and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle.add(parent)
    for code, i in zip(cells, ids, strict=True):
        assert replies[i]["status"] == "ok", (code, replies[i])
    return [{**replies[i], "stdout": out[i]} for i in ids]


def _show(kc: BlockingKernelClient) -> str:
    msg_id = kc.execute("", user_expressions={"state": SHOW})
    while True:
        msg = kc.get_shell_msg(timeout=T)
        if msg["parent_header"].get("msg_id") == msg_id:
            result = msg["content"]["user_expressions"]["state"]
            assert result["status"] == "ok", result
            return result["data"]["text/plain"]


def _show_xy(kc: BlockingKernelClient) -> str:
    msg_id = kc.execute("", user_expressions={"xy": "(x, y)"})
    while True:
        msg = kc.get_shell_msg(timeout=T)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]["user_expressions"]["xy"]["data"]["text/plain"]


def _setup(kc: BlockingKernelClient) -> None:
    _ok(kc, SETUP)
    _ok(kc, f"NAMES = {sorted(_names())!r}")


def test_logged_cells_are_undone_one_by_one_to_every_state(start_kernel) -> None:
    info, proc = start_kernel(_argv("--protection", "cell", "--undo-depth", str(len(CELLS))))
    kc = _client(info)
    try:
        _setup(kc)
        points = _snapshots_of_worker(kc)
        results = _pipelined(kc, [*CELLS, "%timeline"])  # no pause: no point is taken
        timeline = results[-1]["stdout"]
        # Every cell is an undo target, logged after the set-up's point: no fork each.
        for reply in results[:-1]:
            count = reply["execution_count"]
            row = next(ln for ln in timeline.splitlines() if f"state after cell [{count}]" in ln)
            assert "logged" in row, (count, timeline)
        assert f"{len(CELLS)} undo step(s) available" in timeline, timeline
        assert _snapshots_of_worker(kc)[: len(points)] == points
        states = _expected_states()
        assert _show(kc) == states[-1]
        for state in reversed(states[:-1]):
            reply, outputs = _run(kc, "%undo")
            assert reply["status"] == "ok", (reply, outputs)
            assert _show(kc) == state
        assert proc.poll() is None
    finally:
        kc.stop_channels()


def _replies(kc: BlockingKernelClient, cells: list[str]) -> list[dict[str, Any]]:
    """Send every cell at once (the worker never idles in between, so it takes no
    point for the logged ones); their replies in order, whatever their status."""
    ids = [kc.execute(code, stop_on_error=False) for code in cells]
    replies: dict[str, dict[str, Any]] = {}
    while len(replies) < len(ids):
        msg = kc.get_shell_msg(timeout=T)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    return [replies[i] for i in ids]


def test_a_crash_after_logged_cells_replays_them(start_kernel) -> None:
    info, proc = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    try:
        _setup(kc)
        *logged, crashed = _replies(kc, [*CELLS[:3], "import ctypes; ctypes.string_at(0)"])
        assert [r["status"] for r in logged] == ["ok"] * 3, logged
        assert crashed["status"] == "error" and crashed["ename"] == "KernelDied", crashed
        report = _crash_report(kc, [])
        assert report["snapshot_after_cell"] == logged[-1]["execution_count"], report
        assert report["unprotected"] == [], report
        states = _expected_states()
        assert _show(kc) == states[3]
        # The replayed cells are logged again: each can still be undone.
        reply, _ = _run(kc, "%undo 2")
        assert reply["status"] == "ok", reply
        assert _show(kc) == states[1]
        assert proc.poll() is None
    finally:
        kc.stop_channels()


def test_a_kill_right_after_a_logged_cell_keeps_it(start_kernel) -> None:
    info, _ = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    try:
        _setup(kc)
        worker = int(_ok(kc, "import os; print(os.getpid())"))
        # The sleep waits behind the logged cell: no pause, so no point is taken.
        ids = [kc.execute(c) for c in ("x = 41; lst.append(x)", "import time; time.sleep(60)")]
        first = kc.get_shell_msg(timeout=T)
        assert first["parent_header"]["msg_id"] == ids[0] and first["content"]["status"] == "ok"
        os.kill(worker, signal.SIGKILL)
        second = kc.get_shell_msg(timeout=T)
        assert second["content"]["ename"] == "KernelDied", second["content"]
        assert _ok(kc, f"print(x, lst, os.getpid() != {worker})") == "41 [1, 2, 41] True\n"
    finally:
        kc.stop_channels()


def test_a_cell_that_failed_halfway_makes_the_next_one_take_a_point(start_kernel) -> None:
    info, _ = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    try:
        _setup(kc)
        reply, _ = _run(kc, "x = 7; q = 1 / 0")  # x changed, then an error: no point, no log
        assert reply["status"] == "error"
        before = len(_snapshots_of_worker(kc))
        count = _pipelined(kc, ["y = 8"])[0]["execution_count"]
        wait_until(lambda: len(_snapshots_of_worker(kc)) > before, T, "a point after the cell")
        row = next(ln for ln in _ok(kc, "%timeline").splitlines() if f"cell [{count}]" in ln)
        assert "logged" not in row, row
        # The point holds the failed cell's half: a crash now keeps x = 7.
        assert _show_xy(kc) == "(7, 8)"
        # No point sits between the failed cell and `y = 8`: %undo takes back both,
        # and says so (a log entry on the set-up's point would have kept x = 7).
        reply, outputs = _run(kc, "%undo")
        assert reply["status"] == "ok", reply
        text = "".join(str(c.get("data", {}).get("text/plain", "")) for _, c in outputs)
        assert f"[{count - 1}], [{count}] are undone" in text, text
        assert _show_xy(kc) == "(0, 'y')"
    finally:
        kc.stop_channels()


def test_a_pause_after_logged_cells_takes_a_point(start_kernel) -> None:
    info, _ = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    try:
        _setup(kc)
        before = len(_snapshots_of_worker(kc))
        count = _pipelined(kc, ["x = 3", "x += 1"])[-1]["execution_count"]
        # Asked of the supervisor (kernel_info) and the process table, not by a cell:
        # the worker must be left idle for the pause.
        wait_until(lambda: len(_snapshots_of_worker(kc)) > before, T, "the skipped point")
        timeline = _ok(kc, "%timeline")
        row = next(ln for ln in timeline.splitlines() if f"state after cell [{count}]" in ln)
        assert "logged" not in row, timeline
        reply, _ = _run(kc, "%undo")
        assert reply["status"] == "ok", reply
        assert _ok(kc, "print(x)") == "3\n"
    finally:
        kc.stop_channels()


# -- the supervisor's chain with logged cells (pure) -----------------------------------
def _point(count: int) -> RestorePoint:
    return RestorePoint(pid=2**22 + count, count=count, user="alice")


def test_logged_states_are_undo_targets_and_the_depth_counts_them() -> None:
    chain = RestoreChain(undo_depth=3, budget=2**40)
    chain.add(_point(1))
    for count in (2, 3, 4):
        assert chain.log(2**22 + 1, Logged(count, f"x = {count}", "bob"))
    assert not chain.log(2**22 + 99, Logged(5, "x = 5"))  # named another point: refused
    assert [t.count for t in chain.states()] == [1, 2, 3, 4]
    assert [t.count for t in chain.undo_targets(4)] == [1, 2, 3]
    assert chain.newest is not None and chain.newest.last == 4
    # %undo 1 from state 4: the point after [1], replaying [2] and [3]
    choice = choose(UndoRequest(steps=1, seen=4), chain, [1, 2, 3, 4])
    assert isinstance(choice, UndoChoice), choice
    assert (choice.target.count, choice.state, choice.undone) == (1, 3, [4])
    assert [e.code for e in choice.replay] == ["x = 2", "x = 3"]
    # the peer's logged cell is named as such when it is unseen
    assert "(by bob)" in str(choose(UndoRequest(first=3, last=3), chain, [1, 2, 3, 4]))
    # a point taken after [4] holds that state itself: its log entry goes
    chain.add(_point(4))
    assert [t.count for t in chain.states()] == [1, 2, 3, 4]
    assert [t.point.count for t in chain.states()] == [1, 1, 1, 4]
    # the point after [1] stays while its logged [2], [3] are within the depth...
    chain.add(_point(5))
    assert [p.count for p in chain.points] == [1, 4, 5]
    rows = chain.timeline(5, measure=False)["points"]
    assert [(r["count"], r.get("logged", False), r["undo_steps"]) for r in rows] == [
        (1, False, 0), (2, True, 3), (3, True, 2), (4, False, 1), (5, False, 0)]
    gone = chain.timeline(5, measure=False)["gone"]
    assert gone == ["the state after cell [1] is older than the 3 states undo_depth keeps "
                    "(kept as the base the cells logged after it replay on)"], gone
    chain.add(_point(6))  # %undo 3 from [6] still replays [2], [3] on it
    assert [p.count for p in chain.points] == [1, 4, 5, 6]
    # ...and goes once the states after it are more than the depth
    chain.add(_point(7))
    assert [p.count for p in chain.points] == [4, 5, 6, 7]
    assert "the state after cells [1], [2], [3] were dropped" in chain.gone[-1]


def test_the_tui_timeline_marks_logged_and_base_rows() -> None:
    from ipytui.widgets.timeline_panel import point_line

    row = {"count": 3, "user": "bob", "changed": ["x"], "taken": 0.0, "held": 0}
    assert "(logged: no fork)" in point_line({**row, "logged": True, "undo_steps": 1})
    assert point_line({**row, "undo_steps": 2}).startswith("%undo 2")
    assert point_line({**row, "undo_steps": 0, "current": False}).startswith("base")
    assert point_line({**row, "undo_steps": 0, "current": False, "logged": True}).startswith("past")
    assert point_line({**row, "undo_steps": 0, "current": True}).startswith("current")


# -- the worker's side of a replay (pure: a stand-in worker) ---------------------------
class _Publisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def sup(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def test_a_replay_stops_at_a_cell_that_fails_and_says_which() -> None:
    from types import SimpleNamespace

    from ipytui.kernel.worker.execution import DisplayHook
    from ipytui.kernel.worker.replay import replay

    namespace: dict[str, Any] = {}
    worker = SimpleNamespace(namespace=namespace, publisher=_Publisher(), snapshots=None,
                             displayhook=DisplayHook(namespace, lambda value, count: None))
    ran = replay(worker, [[1, "x = 1", "alice"], ["bad"], [2, "y = missing"], [3, "z = 3"]])
    assert ran == 1 and namespace["x"] == 1 and "z" not in namespace
    assert namespace["In"][-1] == "y = missing" and namespace["_i1"] == "x = 1"
    (failed,) = worker.publisher.events
    assert failed["event"] == "replay_failed" and failed["count"] == 2
    assert "NameError" in failed["why"]


def test_the_log_pipe_carries_whole_cells_to_the_point_only() -> None:
    from ipytui.kernel.worker.replay import LogPipe, close_ends

    worker_end, point_end = LogPipe(), LogPipe()
    read, write = os.pipe()
    # As after a fork, each side has both ends and closes the one it does not use.
    worker_end.writer((os.dup(read), write))
    point_end.reader((read, os.dup(write)))
    assert worker_end.write(3, "x = 1") and worker_end.write(4, "lst.append('é')")
    assert not worker_end.write(5, "s = '" + "a" * 5000 + "'")  # over PIPE_BUF: a point instead
    assert point_end.read() == [(3, "x = 1"), (4, "lst.append('é')")]
    assert point_end.read() == []
    while worker_end.write(6, "y = 2"):  # a full pipe refuses, never blocks
        pass
    assert not point_end.writing and LogPipe().write(1, "x = 1") is False
    close_ends((worker_end.fd, point_end.fd))
