"""Kernels side by side, cells sent round-robin: an A/B of one kind of cell whose
ratios the VM's speed swings cannot skew (they hit every kernel alike).

Each kernel is ``label=kind[:NAME=VALUE,...]``: ``kind`` is ``ipykernel``,
``ipytui``, or ``ipytui-<level>`` (``--protection <level>``); the NAME=VALUE
pairs go into its environment, so ``old=ipytui-cell:PYTHONPATH=/path/to/tree``
runs another checkout of ipytui next to this one. The first kernel is the
reference of every ratio. Every cell's reply must be ok, else it stops.

    python benchmarks/interleaved.py --size 0 --cell small ipk=ipykernel cell=ipytui-cell
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_bench import KernelRun  # noqa: E402
from procs import KERNEL_COMMANDS, Workdir, install_handlers, kill_all  # noqa: E402
from undo_bench import CELLS, setup_code  # noqa: E402  (the same cells, the same namespace)


def kernel_kind(kind: str) -> str:
    """The KERNEL_COMMANDS key for ``kind``, adding ``ipytui-<level>`` on first use."""
    if kind in KERNEL_COMMANDS:
        return kind
    base, _, level = kind.partition("-")
    if base != "ipytui" or not level:
        raise SystemExit(f"unknown kernel kind {kind!r}: ipykernel, ipytui or ipytui-<level>")
    KERNEL_COMMANDS[kind] = [*KERNEL_COMMANDS["ipytui"][:-1], "--protection", level, "-f"]
    return kind


def parse_kernel(spec: str) -> tuple[str, str, dict[str, str]]:
    """``label=kind[:NAME=VALUE,...]`` -> (label, kind, extra environment)."""
    label, sep, rest = spec.partition("=")
    if not sep or not label:
        raise SystemExit(f"a kernel is label=kind[:NAME=VALUE,...], not {spec!r}")
    kind, _, pairs = rest.partition(":")
    env = {}
    for pair in filter(None, pairs.split(",")):
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"{pair!r} in {spec!r} is no NAME=VALUE")
        env[name] = value
    return label, kernel_kind(kind), env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernels", nargs="+", help="label=kind[:NAME=VALUE,...]")
    parser.add_argument("--size", type=int, default=0, help="MiB of the array `big`")
    parser.add_argument("--cell", choices=sorted(CELLS), default="small")
    parser.add_argument("--cells", type=int, default=200, help="timed cells per kernel")
    parser.add_argument("--warm", type=int, default=20, help="untimed cells first")
    args = parser.parse_args(argv)
    specs = [parse_kernel(spec) for spec in args.kernels]
    install_handlers()
    runs: dict[str, KernelRun] = {}
    workdirs: list[Workdir] = []
    try:
        for label, kind, extra in specs:
            wd = Workdir()
            workdirs.append(wd)
            run = KernelRun(kind, wd, env={**wd.env, **extra})
            run.start(lambda *a: None)
            if run.client.run(setup_code(args.size), 300)["status"] != "ok":
                raise SystemExit(f"{label}: the set-up cell failed")
            runs[label] = run
        times: dict[str, list[float]] = {label: [] for label in runs}
        for i in range(args.warm + args.cells):
            for label, run in runs.items():
                began = time.perf_counter()
                reply = run.client.run(CELLS[args.cell], 300)
                took = time.perf_counter() - began
                if reply["status"] != "ok":
                    raise SystemExit(f"{label}: cell {i} failed: {reply}")
                if i >= args.warm:
                    times[label].append(took * 1e3)
    finally:
        for run in runs.values():
            run.stop()
        kill_all()
        for wd in workdirs:
            shutil.rmtree(wd.root, ignore_errors=True)
    medians = {label: statistics.median(ts) for label, ts in times.items()}
    base = next(iter(medians.values()))
    print(f"{args.size} MiB, {args.cell}, {args.cells} cells each, medians:")
    for label, median in medians.items():
        print(f"  {label:12s} {median:8.2f} ms  {median / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
