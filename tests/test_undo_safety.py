"""Undo that never loses work (issue 22's gaps), against the real kernel.

The real ipytui kernel in a subprocess, driven by jupyter_client: a restore
point that never wakes (SIGSTOP) makes the undo fail with ``UndoFailed`` after
its deadline while the namespace, a peer's queued request and the next cell
go on; an undo never takes back a peer's cell that finished after the undo
was chosen (two real clients), whether it names its cells (``--to/--last``,
as the TUI sends) or counts them (``%undo N``, from the state when it arrived,
its sender's own queued cells included); and the pure choice of the point.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from ipytui.kernel.protocol import procs
from ipytui.kernel.supervisor.restore_points import RestoreChain, RestorePoint
from ipytui.kernel.supervisor.undo_target import UndoRequest, choose
from jupyter_client.blocking import BlockingKernelClient
from test_protection import T, _argv, _client, _ok, _run, _signal_pending, _snapshots_of_worker

pytestmark = pytest.mark.timeout(180)


def _shell_reply(kc: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + T
    while True:
        assert time.monotonic() < deadline, msg_id
        msg = kc.get_shell_msg(timeout=T)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]


def _iopub_until(kc: BlockingKernelClient, found: Any) -> dict[str, Any]:
    """The first IOPub message for which ``found(msg)`` holds."""
    deadline = time.monotonic() + T
    while True:
        assert time.monotonic() < deadline, "no such IOPub message"
        with contextlib.suppress(Exception):  # queue.Empty
            msg = kc.get_iopub_msg(timeout=0.2)
            if found(msg):
                return msg


def _woken(pid: int) -> bool:
    """SIGUSR1 waits for the stopped point, or it is gone already (killed at its deadline)."""
    try:
        return _signal_pending(pid, signal.SIGUSR1)
    except FileNotFoundError:
        return True


def test_an_undo_whose_point_never_wakes_fails_and_loses_nothing(start_kernel) -> None:
    info, proc = start_kernel(_argv("--protection", "cell"))
    alice, bob = _client(info, "alice"), _client(info, "bob")
    target = 0
    try:
        _ok(alice, "q = 'kept'")
        _ok(alice, "q = 'newest'; lam = lambda v: v + 1; gen = iter(range(5)); next(gen)")
        target = _snapshots_of_worker(alice)[0]  # the state after cell [1]: %undo's target
        os.kill(target, signal.SIGSTOP)  # woken, it can never say hello
        undo_id = alice.execute("%undo")
        wait_until(lambda: _woken(target), T, "the wake-up sent")
        complete_id = bob.complete("la", 2)  # queued behind the stuck undo
        undo = _shell_reply(alice, undo_id)
        assert undo["status"] == "error" and undo["ename"] == "UndoFailed", undo
        assert "did not become ready within" in undo["evalue"], undo
        assert "Nothing was undone" in undo["evalue"], undo
        # The shared stream: bob sees alice's failed undo as an error of her cell.
        shared = _iopub_until(
            bob, lambda m: m["msg_type"] == "error" and m["parent_header"].get("msg_id") == undo_id
        )
        assert shared["content"]["ename"] == "UndoFailed"
        assert "lam" in _shell_reply(bob, complete_id)["matches"]  # the queued request
        wait_until(lambda: not procs.is_running(target), T, "the stuck point killed")
        # The state before the undo, unpicklable objects and a generator part-way included.
        assert _ok(alice, "print(q, lam(1), next(gen))") == "newest 2 1\n"
        timeline = _ok(bob, "%timeline")
        assert "after cell [1] was dropped" in timeline and "did not become ready" in timeline
        assert "state after cell [2]" in timeline  # the newer point is kept again
        reply, _ = _run(alice, "%undo")  # the print cell: back to the kept point after [2]
        assert reply["status"] == "ok", reply
        assert _ok(alice, "print(next(gen))") == "1\n"
        assert proc.poll() is None
    finally:
        if target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGCONT)
        alice.stop_channels()
        bob.stop_channels()


@pytest.mark.parametrize("newest_stuck", [False, True], ids=["newest-serves", "fresh"])
def test_when_the_fallback_never_wakes_either(start_kernel, newest_stuck: bool) -> None:
    """The newest kept point serves (the state before the %undo), else a fresh worker."""
    import psutil

    info, proc = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    stopped: list[int] = []
    try:
        _ok(kc, "q = 'kept'")
        _ok(kc, "q = 'newest'; lam = lambda v: v * 2")
        target, newest = _snapshots_of_worker(kc)[:2]  # the states after cells [1] and [2]
        stopped += [target, newest] if newest_stuck else [target]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        undo_id = kc.execute("%undo", stop_on_error=False)

        def fallback() -> int:
            family = psutil.Process(proc.pid).children(recursive=True)
            return next((p.pid for p in family if p.name() == "ipytui-fallback"), 0)

        wait_until(lambda: fallback() != 0, T, "the undo's fallback")
        stopped.append(fallback())
        os.kill(stopped[-1], signal.SIGSTOP)
        undo = _shell_reply(kc, undo_id)
        assert undo["status"] == "error" and undo["ename"] == "UndoFailed", undo
        assert "fallback" in undo["evalue"], undo
        wait_until(lambda: not any(procs.is_running(p) for p in stopped), T, "all killed")
        if newest_stuck:
            assert "The kernel starts empty" in undo["evalue"], undo
            assert _ok(kc, "print('q' in globals())") == "False\n"  # said so: empty
        else:
            assert "Nothing was undone: the newest kept point" in undo["evalue"], undo
            assert "after cell [2]" in undo["evalue"], undo
            assert _ok(kc, "print(q, lam(2))") == "newest 4\n"  # the state before the %undo
            assert "state after cell [1] was dropped" in _ok(kc, "%timeline")
        assert proc.poll() is None
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        kc.stop_channels()


def test_an_undo_never_takes_back_a_peer_cell_it_did_not_see(start_kernel, tmp_path: Path) -> None:
    info, _ = start_kernel(_argv("--protection", "cell", "--undo-depth", "8"))
    alice, bob = _client(info, "alice"), _client(info, "bob")
    try:
        _ok(alice, "a = 'before'")
        _ok(alice, "a = 'alice'")  # cell [2]: what alice means to undo
        # Alice confirms "undo In [2]" (F10 sends --to 2 --last 2); then bob's cell ends.
        _ok(bob, "b = 'bob'")  # cell [3]
        reply, _ = _run(alice, "%undo --to 2 --last 2")
        assert reply["status"] == "error", reply
        assert "cell [3] (by bob) changed the state after this undo was chosen" in reply["evalue"]
        assert _ok(alice, "print(a, b)") == "alice bob\n"  # nothing was undone
        # %undo N counts from the state when it arrived: bob's cell running then, and
        # finished before the undo ran, is not taken back either.
        flag = tmp_path / "go"
        bob_id = bob.execute(
            f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): "
            "time.sleep(0.01)\nb = 'bob again'"
        )
        _iopub_until(  # bob's cell runs: it reached the kernel before alice's %undo
            bob,
            lambda m: (
                m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == bob_id
            ),
        )
        undo_id = alice.execute("%undo", stop_on_error=False)
        _shell_reply(alice, alice.kernel_info())  # in order: the %undo has arrived
        flag.touch()
        assert _shell_reply(bob, bob_id)["status"] == "ok"
        undo = _shell_reply(alice, undo_id)
        assert undo["status"] == "error" and "by bob" in undo["evalue"], undo
        assert _ok(bob, "print(a, b)") == "alice bob again\n"
        # Named exactly, the undo goes through: alice's [2] and bob's seen cells.
        reply, _ = _run(alice, "%undo --to 2 --last 8")
        assert reply["status"] == "ok", reply
        assert _ok(bob, "print(a, 'b' in globals())") == "before False\n"
        reply, _ = _run(alice, "%undo --to 9")  # not a state-changing cell of this state
        assert reply["status"] == "error" and "not part of the current state" in reply["evalue"]
        # Her own cell, sent before her %undo and finished after it arrived, was meant.
        flag = tmp_path / "go-again"
        cell_id = alice.execute(
            f"import pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists(): "
            "time.sleep(0.01)\na = 'queued'"
        )
        _iopub_until(
            alice,
            lambda m: (
                m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == cell_id
            ),
        )
        undo_id = alice.execute("%undo", stop_on_error=False)
        _shell_reply(alice, alice.kernel_info())
        flag.touch()
        assert _shell_reply(alice, cell_id)["status"] == "ok"
        assert _shell_reply(alice, undo_id)["status"] == "ok"
        assert _ok(bob, "print(a)") == "before\n"
    finally:
        alice.stop_channels()
        bob.stop_channels()


def _chain(*counts: int, user: str = "alice") -> RestoreChain:
    """A chain of points after ``counts`` (pids no process has: nothing is measured)."""
    chain = RestoreChain(undo_depth=10, budget=2**40)
    for count in counts:
        chain.add(RestorePoint(pid=2**22 + count, count=count, user=user))
    return chain


def test_choose_names_the_cells_and_refuses_unseen_ones() -> None:
    chain = _chain(1, 2, 3)
    chain.add(RestorePoint(pid=2**22 + 4, count=4, user="bob"))
    changed = [1, 2, 3, 4]
    choice = choose(UndoRequest(first=3, last=3), chain, changed)
    assert isinstance(choice, str) and "cell [4] (by bob) changed the state" in choice
    choice = choose(UndoRequest(first=3, last=4), chain, changed)
    assert not isinstance(choice, str) and choice.target.count == 2 and choice.undone == [3, 4]
    # %undo N counts from the state it arrived at: bob's [4] finished after that.
    choice = choose(UndoRequest(steps=1, seen=3), chain, changed)
    assert isinstance(choice, str) and "cell [4]" in choice
    # ...unless its sender sent that cell before the %undo (then it was meant).
    choice = choose(UndoRequest(steps=1, seen=3, own=(4,)), chain, changed)
    assert not isinstance(choice, str) and choice.undone == [4]
    assert "not part of the current state" in str(choose(UndoRequest(first=5), chain, changed))
    gap = _chain(1, 3)  # the point after [2] is not kept: before [3] means before [2] too
    assert "would also take back cell [2]" in str(choose(UndoRequest(first=3), gap, [1, 2, 3]))
    assert "cannot undo 5 cells" in str(choose(UndoRequest(steps=5, seen=4), chain, changed))


def test_points_set_aside_come_back_after_a_failed_undo_or_go_after_a_good_one() -> None:
    chain = _chain(1, 2, 3, 4)
    chain.take(2**22 + 2)  # the target, woken
    chain.set_aside(2)
    assert [p.count for p in chain.points] == [1]
    chain.add(RestorePoint(pid=2**22 + 99, count=2))  # the woken target's own new point
    assert chain.put_back(2) == [2**22 + 99]  # failed: that one goes, [3] and [4] return
    assert [p.count for p in chain.points] == [1, 3, 4] and chain.drop_aside() == []
    chain.set_aside(1)
    assert chain.drop_aside() == [2**22 + 3, 2**22 + 4] and chain.aside == []
