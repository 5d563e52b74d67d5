"""What undo's safety costs: ``%undo`` with its fallback next to a reference tree, one run.

    python benchmarks/undo_safety_bench.py --reference /tmp/ipytui-ref/.venv/bin/python
    python benchmarks/undo_safety_bench.py --reference PY --sizes 0,256 --repeats 3 --json out.json

Since issue 22's mend, every ``%undo`` first forks a fallback (the state before
the undo, kept until the woken point is ready: kernel/worker/undo_fallback.py).
Per namespace size (a float64 numpy array ``big`` and a counter ``x``), a fresh
``--protection cell`` kernel of each tree (this one, and ``--reference``: a
Python whose ``ipytui`` is another tree, e.g. the commit before the mend,
installed in its own venv) runs ``big += 1; x += 1`` then ``%undo``,
``--repeats`` times; the figure is the median time of ``%undo`` (send -> reply
and idle), the check that ``big[0]`` and ``x`` are back after every undo. The
ratio is this tree over the reference.

Then the failure the mend is for, on each tree: the target restore point is
SIGSTOPped and ``%undo`` sent. This tree answers ``UndoFailed`` after its wake
deadline with the namespace intact (checked); the reference had no deadline
(it is given ``--hang-cap`` seconds, then reported as hanging).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_bench import KernelRun  # noqa: E402
from procs import KERNEL_COMMANDS, Workdir, install_handlers, kill_all  # noqa: E402

TREES = ("this", "reference")


def _command(python: str) -> list[str]:
    return [python, "-m", "ipytui.kernel", "--protection", "cell", "-f"]


def _value(run: KernelRun, expr: str) -> str:
    msg_id = run.client.execute("", user_expressions={"v": expr}, silent=True)
    _, reply = run.client.wait_done(msg_id, 120)
    return reply["user_expressions"]["v"]["data"]["text/plain"]


def _timed(run: KernelRun, code: str, timeout: float = 300.0) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    done, reply = run.client.wait_done(run.client.execute(code, stop_on_error=False), timeout)
    return (done - t0) * 1e3, reply


def _stop(run: KernelRun) -> None:
    run.stop()
    shutil.rmtree(run.wd.root, ignore_errors=True)


def _start(tree: str, size_mib: int) -> KernelRun:
    run = KernelRun(f"ipytui-{tree}", Workdir())
    run.start(lambda *_: None)
    n = size_mib * 2**20 // 8
    _, reply = _timed(run, f"import numpy as np\nbig = np.ones({n} or 1)\nx = 0")
    assert reply["status"] == "ok", reply
    return run


def undo_times(tree: str, size_mib: int, repeats: int) -> dict[str, Any]:
    """Median %undo time, and whether every undo brought both values back."""
    run = _start(tree, size_mib)
    try:
        times, right = [], 0
        for _ in range(repeats):
            before = (_value(run, "float(big[0])"), _value(run, "x"))
            _, reply = _timed(run, "big += 1; x += 1")
            assert reply["status"] == "ok", reply
            ms, reply = _timed(run, "%undo")
            times.append(ms)
            after = (_value(run, "float(big[0])"), _value(run, "x"))
            right += reply["status"] == "ok" and after == before
        return {"undo_ms": statistics.median(times), "right": right, "of": repeats}
    finally:
        _stop(run)


def stuck_point(tree: str, size_mib: int, cap: float) -> dict[str, Any]:
    """%undo to a SIGSTOPped point: seconds to the answer (None: none within ``cap``),
    its error name, and whether the namespace is intact and the kernel serves."""
    run = _start(tree, size_mib)
    target = 0
    try:
        # A call: each cell takes a point of its own (a plain `x = 1` would be logged
        # after the set-up's point instead, kernel/worker/replayable.py).
        _, reply = _timed(run, "x = int(1)")
        _, reply = _timed(run, "x = int(2)")
        worker = psutil.Process(int(_value(run, "__import__('os').getpid()")))
        points = sorted(
            (c for c in worker.children() if c.name() == "ipytui-snapshot"),
            key=lambda c: c.create_time(),
        )
        target = points[-2].pid  # the state after `x = 1`: %undo's target
        os.kill(target, signal.SIGSTOP)
        t0 = time.perf_counter()
        msg_id = run.client.execute("%undo", stop_on_error=False)
        try:
            done, reply = run.client.wait_done(msg_id, cap)
        except TimeoutError:
            return {"seconds": None, "ename": "", "intact": None}
        intact = _value(run, "x") == "2"
        return {"seconds": done - t0, "ename": reply.get("ename", ""), "intact": intact}
    finally:
        if target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGCONT)
        _stop(run)


def render(rows: list[dict[str, Any]], stuck: dict[str, dict[str, Any]]) -> str:
    lines = [
        "%undo of one cell (median), this tree vs the reference, --protection cell",
        f"{'size':>8}  {'this':>10}  {'right':>5}  {'reference':>10}  {'right':>5}  {'ratio':>6}",
    ]
    for row in rows:
        this, ref = row["this"], row["reference"]
        lines.append(
            f"{row['size_mib']:>5} MiB  {this['undo_ms']:>7.1f} ms  {this['right']}/{this['of']:<3}"
            f"  {ref['undo_ms']:>7.1f} ms  {ref['right']}/{ref['of']:<3}"
            f"  {this['undo_ms'] / ref['undo_ms']:>5.2f}x"
        )
    lines.append("%undo to a SIGSTOPped restore point")
    for tree in TREES:
        out = stuck[tree]
        if out["seconds"] is None:
            lines.append(f"  {tree:<9}  no answer within the cap: the undo and the kernel hang")
        else:
            lines.append(
                f"  {tree:<9}  {out['ename'] or 'ok'} after {out['seconds']:.1f} s;"
                f" namespace intact: {out['intact']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="python of the reference tree")
    parser.add_argument("--sizes", default="0,256,1024", help="namespace sizes in MiB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hang-cap", type=float, default=30.0, help="seconds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    install_handlers()
    KERNEL_COMMANDS["ipytui-this"] = _command(sys.executable)
    KERNEL_COMMANDS["ipytui-reference"] = _command(args.reference)
    try:
        rows = []
        for i, size in enumerate(int(s) for s in args.sizes.split(",")):
            order = TREES if i % 2 == 0 else TREES[::-1]  # who runs first alternates
            row: dict[str, Any] = {"size_mib": size}
            for tree in order:
                row[tree] = undo_times(tree, size, args.repeats)
            rows.append(row)
        stuck = {tree: stuck_point(tree, 0, args.hang_cap) for tree in TREES}
    finally:
        kill_all()
    print(render(rows, stuck))
    if args.json:
        args.json.write_text(json.dumps({"undo": rows, "stuck": stuck}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
