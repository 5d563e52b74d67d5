"""ipytui engines next to stock ``ipengine``, in one run, on the same machine.

    python benchmarks/engine_bench.py                      # 3 reps, 2 engines, 10 000 tasks
    python benchmarks/engine_bench.py --reps 1 --map-n 2000 --rt-n 100 --json out.json
    python benchmarks/engine_bench.py --hb-period 200      # the controller's heartbeat (ms)

Each repetition starts a controller, then a set of engines of each kind
(alternating which kind goes first), through ipyparallel's own ``Cluster``
(``engine_launcher_class="ipytui"`` against the default launcher), and measures:

- **engine start**: ``start_engines`` until every engine has registered and
  answered a first task (correct: n distinct processes answered). The
  controller completes a registration only at its heart monitor's beat after
  the engine's first heartbeat (``HeartMonitor.period``, 3 s by default), so at the default
  period both kinds wait for that grid (3-6 s) whatever their own start
  costs; ``--hb-period 200`` (the controller's, the same for both kinds)
  shows the engines' own start;
- **round trip**: ``apply_sync(lambda: None)`` on one engine (correct: None);
- **map**: ``LoadBalancedView.map_sync`` over ``--map-n`` small tasks, one
  task per message (correct: the exact list of results);
- **crash -> serving**: a segfault in a task on one engine until that task's
  error reply, and until that engine serves again with its namespace (correct:
  the pushed value is back, under the same engine id). ``ipengine`` has no
  figure: its engine is gone, which the correctness column says.

Figures are medians (and the worst sample) per kind and the ratio
ipytui/ipengine of the medians; every figure has its count of correct
answers beside it. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

KINDS = ("ipytui", "ipengine")
LAUNCHERS = {"ipytui": "ipytui", "ipengine": "local"}


def crash() -> None:
    import ctypes

    ctypes.string_at(0)


class Samples:
    """Timings (seconds) and correctness counts per (metric, kind)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[float]] = {}
        self.right: dict[tuple[str, str], list[int]] = {}  # [correct, total]
        self.notes: dict[tuple[str, str], str] = {}
        self.failures: list[str] = []  # errors behind the misses

    def add(self, metric: str, kind: str, seconds: float | None, correct: bool) -> None:
        if seconds is not None:
            self.times.setdefault((metric, kind), []).append(seconds)
        count = self.right.setdefault((metric, kind), [0, 0])
        count[0] += int(correct)
        count[1] += 1


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def one_kind(kind: str, cluster: Any, n: int, args: argparse.Namespace, out: Samples) -> None:
    """Start ``n`` engines of ``kind`` on the running controller, measure, stop them."""
    import ipyparallel as ipp

    cluster.engine_launcher_class = LAUNCHERS[kind]
    start = time.perf_counter()
    cluster.start_engines_sync(n)
    client = cluster.connect_client_sync()
    client.wait_for_engines(n, timeout=300)
    ids = client[:].apply_sync(ipp.interactive(lambda: __import__("os").getpid()))
    out.add("engine start", kind, time.perf_counter() - start, len(set(ids)) == n)
    try:
        measure(kind, client, args, out)
    finally:
        cluster.stop_engines_sync()
        deadline = time.monotonic() + 120
        while client.ids and time.monotonic() < deadline:  # the next set must not meet these
            time.sleep(0.05)
        client.close()


def measure(kind: str, client: Any, args: argparse.Namespace, out: Samples) -> None:
    import ipyparallel as ipp

    first = min(client.ids)  # the hub numbers engines on: a new set gets new ids
    engine = client[first]
    engine.apply_sync(lambda: None)  # warm
    for _ in range(args.rt_n):
        seconds, value = timed(lambda: engine.apply_sync(lambda: None))
        out.add("round trip", kind, seconds, value is None)
    lv = client.load_balanced_view()
    expected = [x + 1 for x in range(args.map_n)]
    seconds, value = timed(lambda: lv.map_sync(lambda x: x + 1, range(args.map_n)))
    out.add(f"map {args.map_n} tasks", kind, seconds, value == expected)

    client[:].push({"kept": 41}, block=True)
    start = time.perf_counter()
    ar = engine.apply_async(crash)
    try:
        ar.get(timeout=120)
        answered = False
    except ipp.RemoteError as exc:
        answered = exc.ename in ("KernelDied", "EngineError")
    out.add("crash -> error reply", kind, time.perf_counter() - start, answered)
    if kind == "ipengine":
        out.add("crash -> serving", kind, None, False)
        out.notes[("crash -> serving", kind)] = "engine lost"
        return
    ar = engine.apply_async(ipp.interactive(lambda: kept))  # noqa: F821 - pushed above
    try:
        back = ar.get(timeout=120)
    except ipp.RemoteError as exc:  # counted as a miss, with what happened
        back = None
        ar.wait_for_output(timeout=5)
        out.failures.append(f"crash -> serving: {exc}; the task's stderr: {ar.stderr!r}")
    out.add(
        "crash -> serving", kind, time.perf_counter() - start, back == 41 and first in client.ids
    )


def report(out: Samples) -> list[dict[str, Any]]:
    metrics = list(dict.fromkeys(metric for metric, _ in out.right))
    rows = []
    print(
        f"\n{'metric':24} {'ipytui median (max)':>22} {'ipengine median (max)':>22} "
        f"{'ratio':>6}  correct ipytui / ipengine"
    )
    for metric in metrics:
        row: dict[str, Any] = {"metric": metric}
        cells = []
        for kind in KINDS:
            times = out.times.get((metric, kind), [])
            right = out.right.get((metric, kind), [0, 0])
            median = statistics.median(times) if times else None
            row[kind] = {
                "median": median,
                "max": max(times) if times else None,
                "correct": right[0],
                "total": right[1],
                "note": out.notes.get((metric, kind), ""),
            }
            cells.append(
                f"{_ms(median)} ({_ms(max(times))})"
                if times
                else out.notes.get((metric, kind), "-")
            )
        a, b = row["ipytui"]["median"], row["ipengine"]["median"]
        row["ratio"] = a / b if a is not None and b else None
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        rights = " / ".join(f"{row[k]['correct']}/{row[k]['total']}" for k in KINDS)
        print(f"{metric:24} {cells[0]:>22} {cells[1]:>22} {ratio:>6}  {rights}")
        rows.append(row)
    return rows


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--rt-n", type=int, default=300, help="round trips per repetition")
    parser.add_argument("--map-n", type=int, default=10_000, help="tasks in the map")
    parser.add_argument(
        "--hb-period", type=int, help="the controller's HeartMonitor.period, ms (default: its own)"
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="engine-bench-")
    os.environ.update(
        IPYTHONDIR=f"{work}/ipython",
        IPYTUI_DATA_DIR=f"{work}/ipytui",
        JUPYTER_RUNTIME_DIR=f"{work}/runtime",
    )
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # both sides run from bytecode
    os.environ["PYTHONPYCACHEPREFIX"] = f"{work}/pycache"
    import ipyparallel as ipp

    print(
        f"engine_bench: workdir {work}; {args.engines} engines, {args.reps} reps, "
        f"heartbeat {args.hb_period or 'default'}; load {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    out = Samples()
    controller_args = [f"--HeartMonitor.period={args.hb_period}"] if args.hb_period else []
    cluster = ipp.Cluster(n=0, log_level=40, controller_args=controller_args)
    cluster.start_controller_sync()
    try:
        for kind in KINDS:  # untimed: compile caches and page cache warm for both
            scratch = Samples()
            one_kind(kind, cluster, 1, argparse.Namespace(rt_n=1, map_n=10), scratch)
        for rep in range(args.reps):
            for kind in KINDS if rep % 2 == 0 else KINDS[::-1]:
                one_kind(kind, cluster, args.engines, args, out)
    finally:
        cluster.stop_cluster_sync()
    rows = report(out)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for failure in out.failures:
        print(f"miss: {failure}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "engines": args.engines,
                    "reps": args.reps,
                    "hb_period": args.hb_period,
                    "rows": rows,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
