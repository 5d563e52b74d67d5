"""A restore point's birth (kernel/worker/dormant_fork.py): its child sleeps until
SIGUSR1 or its wait's end, and never hangs, whatever the worker's other threads do.

In a fresh interpreter: woken, the child is a whole interpreter (threads,
imports); with threads busy wanting the GIL, no child hangs (the fifth stop's
fork through libc ran bytecode before CPython's after-fork work, and a GIL
hand-over request pending at the fork hung ~1 child in 100). On the real
kernel: a crash right after a cell wakes a sleeping point, and the restored
worker has everything, threads work, and later points are taken as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import wait_until
from test_protection import _argv, _client, _ok, _protection, _run, _snapshots_of_worker

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent("""\
    import json, os, signal, sys, threading, time
    from ipytui.kernel.worker import dormant_fork

    mode = sys.argv[1]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ready_r, ready_w = os.pipe()
    pid, promoted = dormant_fork.fork(30.0 if mode != "timeout" else 0.3)
    if pid == 0:  # the child, awake: a whole interpreter
        result = []
        t = threading.Thread(target=lambda: result.append(sum(range(10))))
        t.start(); t.join()
        import decimal  # an import after the fork
        os.write(ready_w, json.dumps({"promoted": promoted, "thread": result,
                                      "decimal": str(decimal.Decimal(1) / 4)}).encode())
        os._exit(0)
    if mode == "promote":
        time.sleep(0.3)  # asleep by now
        os.kill(pid, signal.SIGUSR1)
    said = json.loads(os.read(ready_r, 4096))
    os.waitpid(pid, 0)
    print(json.dumps(said))
""")

BUSY = textwrap.dedent("""\
    import os, signal, sys, threading, time
    from ipytui.kernel.worker import dormant_fork

    def busy():  # wants the GIL back every switch interval
        x = 0
        while True:
            x += 1

    for _ in range(2):
        threading.Thread(target=busy, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    children = []
    for _ in range(int(sys.argv[1])):
        pid, _ = dormant_fork.fork(0.02)
        if pid == 0:
            os._exit(0)  # its wait is over: it ran on, and ends
        children.append(pid)
    left, deadline = set(children), time.monotonic() + 30
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if os.waitpid(pid, os.WNOHANG)[0] == 0}
        time.sleep(0.05)
    for pid in left:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    print(len(left))
""")


def _run_script(mode: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_sleeping_child_woken_by_sigusr1_is_a_whole_interpreter() -> None:
    seen = _run_script("promote")
    assert seen == {"promoted": True, "thread": [45], "decimal": "0.25"}


def test_a_child_whose_wait_ends_goes_on_unpromoted() -> None:
    seen = _run_script("timeout")
    assert seen["promoted"] is False and seen["thread"] == [45]


def test_no_child_hangs_while_other_threads_want_the_gil() -> None:
    done = subprocess.run([sys.executable, "-c", BUSY, "300"], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "0\n"  # children that never ended


def test_a_crash_wakes_a_sleeping_point_whole(start_kernel) -> None:
    """The point of the cell before the crash is still asleep (its checkpoint is not
    due for 50 ms): the crash wakes it, and it serves with every value."""
    info, proc = start_kernel(_argv("--protection", "cell"))
    kc = _client(info)
    try:
        _ok(kc, "import threading; square = lambda v: v * v; gen = iter(range(5)); next(gen)")
        reply, _ = _run(kc, "x = 1\nimport ctypes; ctypes.string_at(0)")
        assert reply["status"] == "error", reply
        out = _ok(kc, "t = threading.Thread(target=lambda: None); t.start(); t.join(); "
                      "print(square(3), next(gen), 'x' in dir())")
        assert out == "9 1 False\n"
        _ok(kc, "y = 2")
        _ok(kc, "y = 3")
        assert len(_snapshots_of_worker(kc)) >= 2  # the woken worker takes points again
        reply, _ = _run(kc, "%undo")
        assert reply["status"] == "ok", reply
        assert _ok(kc, "print(y)") == "2\n"
        assert proc.poll() is None
    finally:
        kc.stop_channels()


def _point_after(kc, count: int) -> None:
    """Wait (asking kernel_info: no cell, which would keep the kernel from idling) until
    the newest restore point holds the state after cell ``count``."""
    def covered() -> bool:
        point = _protection(kc).get("restore_point") or {}
        return point.get("after_cell") == count and not point.get("cells_after")

    wait_until(covered, what=f"a restore point after cell [{count}]")


@pytest.mark.parametrize("level", ["cell", "idle"])
def test_the_timeline_names_what_each_cell_changed(start_kernel, level) -> None:
    """The supervisor reads the names from the cell's request (level cell), the worker
    sends them with an idle-time point, and a point taken right after a crash restore
    keeps the names of its cell."""
    argv = ("--protection", level) if level == "cell" else ("--protection", "idle",
                                                              "--idle-seconds", "0.2")
    info, _ = start_kernel(_argv(*argv))
    kc = _client(info)
    try:
        _ok(kc, "alpha = 1; beta = [2]")
        _ok(kc, "beta.append(3); gamma = 4")

        def line_of(count: int) -> str:
            timeline = _ok(kc, "%timeline")
            return next((ln for ln in timeline.splitlines() if f"cell [{count}]" in ln), timeline)

        _point_after(kc, 2)
        assert "changed: beta, gamma" in line_of(2)
        reply, _ = _run(kc, "delta = 5\nimport ctypes; ctypes.string_at(0)")
        assert reply["status"] == "error", reply
        _point_after(kc, 2)  # the restored worker's own point of that state
        assert "changed: beta, gamma" in line_of(2)
    finally:
        kc.stop_channels()


SLOW_TO_PICKLE = """\
import os, time
class Slow:
    def __reduce__(self):  # holds the checkpoint writer until the test lets it go
        while not os.path.exists({release!r}):
            time.sleep(0.02)
        return (int, (1,))
x = 1
slow = Slow()
"""


def test_a_point_keeps_the_workers_priority_and_its_checkpoint_writer_runs_nicer(
        start_kernel, tmp_path) -> None:
    """A point never changes its priority: promoted after a crash it is the worker,
    and a user's process cannot lower its nice value again (as root, the kernel runs
    here without CAP_SYS_NICE, like a user's). Its checkpoint is written on a thread
    10 nicer, which the promotion cuts short."""
    import os
    import shutil

    import psutil

    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--bounding-set=-sys_nice"] if setpriv and os.geteuid() == 0 else []
    info, _ = start_kernel([*prefix, *_argv("--protection", "cell")])
    kc = _client(info)
    release = tmp_path / "release"
    try:
        _ok(kc, SLOW_TO_PICKLE.format(release=str(release)))
        point = psutil.Process(_snapshots_of_worker(kc)[-1])
        worker_nice = point.parent().nice()
        assert point.nice() == worker_nice

        def writer() -> psutil.Process | None:  # the point's thread held in Slow's pickle
            return next((psutil.Process(t.id) for t in point.threads() if t.id != point.pid), None)

        wait_until(lambda: writer() is not None, 30, "the point's checkpoint writer")
        assert writer().nice() == min(19, worker_nice + 10)
        assert point.nice() == worker_nice  # the thread's alone
        reply, _ = _run(kc, "import ctypes; ctypes.string_at(0)")  # the point is promoted
        assert reply["status"] == "error", reply
        assert _ok(kc, "print(os.getpriority(os.PRIO_PROCESS, 0), x)") == f"{worker_nice} 1\n"
        assert not list(tmp_path.rglob(".*.tmp"))  # the stopped writer left nothing
    finally:
        release.touch()
        kc.stop_channels()
