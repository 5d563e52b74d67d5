"""Undo benchmark: ipykernel, ipykernel + Kishu and ipytui side by side, one run (issue 22).

    python benchmarks/undo_bench.py                        # 0, 256, 1024 MiB; 5 cells of each kind
    python benchmarks/undo_bench.py --sizes 0 --cells 1 --cases rebinding,lambda --json out.json
    python benchmarks/undo_bench.py --pause 4 --ipytui-protection auto --cases none  # user-paced

Per namespace size (a float64 numpy array ``big``, plus a few small objects;
sizes over the cap of data_bench.py are skipped and said so), a fresh kernel
of each kind (see undo_kernels.py; the order rotates from size to size) runs
``--cells`` cells of each kind back to back, every one of them undoable on
Kishu and ipytui: ``big += 1`` (rewrite in place), ``x += 1; small.append(x);
meta['n'] = x`` (a few small objects), ``pass`` (nothing). Per cell kind: the
median time send -> reply and idle, and the peak PSS of the kernel's process
tree (sampled every 0.1 s between cells, never during a timed one, and after each cell). Then the disk the kernel
wrote (right after the cells, and, after the undo below, once it stopped
growing for 10 s, at most 90 s: longer than ipytui's wait before its
background checkpoint, 7 s at 1 GiB), one more ``big += 1; x += 1`` taken back (timed; checked: both values
are back) and whether the cells left the right values.

``--pause S`` waits S seconds after every cell, as a person reading the output
would (the same pause for every kernel; the cell's time is still send -> reply
and idle): with ``--ipytui-protection auto`` (the default level; ``cell``
otherwise) ipytui then takes its restore point in the pause, and the undo of
the last cell checks that the cell before it was still undoable.

Then the correctness table (undo_cases.py): each kind of change set up,
changed, undone, checked, on fresh kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_bench import _available_mib, tree_pss  # noqa: E402
from procs import KERNEL_COMMANDS, install_handlers, kill_all  # noqa: E402
from undo_cases import CASES, render_cases, run_cases  # noqa: E402
from undo_kernels import (  # noqa: E402
    CASE_KINDS,
    KINDS,
    KernelDidNotStart,
    UndoKernel,
    kishu_available,
)

CELLS = {
    "inplace": "big += 1",
    "small": "x += 1; small.append(x); meta['n'] = x",
    "nothing": "pass",
}
GOALS = (("inplace", 3.0), ("small", 1.1), ("nothing", 1.1))


def setup_code(mib: int) -> str:
    """The namespace every kind of cell works on: ``big`` of ``mib`` MiB, small objects."""
    return f"import numpy as np; big = np.ones({mib * 2**20 // 8}); x = 0; small = []; meta = {{}}"
UNDO_GOAL_S = 0.5


class PeakPss:
    """The largest PSS of a process tree, sampled every 0.1 s on a thread while it runs,
    never while a timed cell runs (``quiet``): reading a process's smaps_rollup walks
    its page tables holding its memory map's lock (a fork waits for it) and takes a
    core, so sampling during a cell slowed the kernel with the most processes and
    the largest mappings most. The cell loop samples after each cell instead."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held by a sample, or by a timed cell
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self.sample()

    def quiet(self) -> threading.Lock:
        """Hold it around a timed cell: no sample runs meanwhile."""
        return self._lock

    def sample(self) -> None:
        self.peak = max(self.peak, tree_pss(self.pid))

    def __enter__(self) -> PeakPss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def settled_disk(kernel: UndoKernel, quiet: float = 10.0, limit: float = 90.0) -> int:
    """The kernel's disk once it stopped growing for `quiet` s (a background checkpoint)."""
    deadline = time.monotonic() + limit
    last, since = kernel.disk_bytes(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = kernel.disk_bytes()
        if now != last:
            last, since = now, time.monotonic()
    return last


def measure(kind: str, mib: int, cells: int, pause: float = 0.0) -> dict[str, Any]:
    """One kernel at one size: times and peak PSS per cell kind, disk, undo, values."""
    kernel = UndoKernel(kind)
    out: dict[str, Any] = {"times": {}, "peak_pss": {}, "errors": []}
    try:
        kernel.start()
        out["pid"], out["workdir"] = kernel.pid, str(kernel.wd.root)
        setup = kernel.cell(setup_code(mib))
        if not setup.ok:
            raise RuntimeError(f"{kind}: set-up failed: {setup.error()}")
        out["setup_ms"] = setup.ms
        disk0 = kernel.disk_bytes()
        for name, code in CELLS.items():
            times = []
            with PeakPss(kernel.pid) as pss:
                for _ in range(cells):
                    with pss.quiet():
                        res = kernel.cell(code)
                    times.append(res.ms)
                    pss.sample()
                    time.sleep(pause)  # a person reading the output (0: back to back)
                    if not res.ok:
                        out["errors"].append(f"{name}: {res.error()}")
            out["times"][name], out["peak_pss"][name] = times, pss.peak
        out["disk_after_cells"] = kernel.disk_bytes() - disk0
        value = 1.0 + cells
        expected = f"{cells} {value} {value} {cells} {cells}"
        check = (
            "print(x, big[0] if big.size else 1.0 + x, big[-1] if big.size else 1.0 + x, "
            "len(small), meta['n'])"
        )
        seen = kernel.cell(check).stdout.strip()
        out["values_right"] = seen == expected
        time.sleep(pause)  # the check cell is one more cell (a print may change state)
        _undo(kernel, out, check, expected)
        out["disk_settled"] = settled_disk(kernel) - disk0
    finally:
        kernel.stop()
    return out


def measure_retrying(kind: str, mib: int, cells: int, pause: float = 0.0) -> dict[str, Any]:
    """`measure`, once more on a fresh kernel if the first one never started (said so)."""
    try:
        return measure(kind, mib, cells, pause)
    except KernelDidNotStart as exc:
        print(f"  {exc}; trying a fresh kernel", file=sys.stderr)
        return measure(kind, mib, cells, pause)


def _undo(kernel: UndoKernel, out: dict[str, Any], check: str, expected: str) -> None:
    """One more ``big += 1; x += 1`` taken back: the time, and whether the values are back."""
    changed = kernel.cell("big += 1; x += 1")
    undo = kernel.undo() if changed.ok else None
    if undo is None:
        return
    out["undo_ms"] = undo.ms
    out["undo_error"], out["undo_said"] = undo.error(), undo.shown
    # The check cell prints after the undo; `print` of x and big must show the old values.
    seen = kernel.cell(check).stdout.strip()
    out["undo_right"] = not undo.error() and seen == expected
    out["undo_seen"] = seen


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def render(results: dict[int, dict[str, dict[str, Any]]], cells: int) -> str:
    """Time, PSS and disk tables with ratios to ipykernel, then the goals."""
    med = statistics.median
    lines = [
        "| size | cell | ipykernel ms | Kishu ms | Kishu ratio | ipytui ms | ipytui ratio "
        "| peak PSS MiB (ipykernel / Kishu / ipytui) | PSS ratio (Kishu / ipytui) | "
        "errors (Kishu / ipytui) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mib, r in results.items():
        k, m, t = r["ipykernel"], r["kishu"], r["ipytui"]
        for name in CELLS:
            tk, tm, tt = (med(x["times"][name]) for x in (k, m, t))
            pk, pm, pt = (x["peak_pss"][name] for x in (k, m, t))
            errs = [sum(e.startswith(name + ":") for e in x["errors"]) for x in (m, t)]
            lines.append(
                f"| {mib} MiB | {name} | {tk:.1f} | {tm:.1f} | {_ratio(tm, tk)} | {tt:.1f} "
                f"| {_ratio(tt, tk)} | {pk:.0f} / {pm:.0f} / {pt:.0f} | {_ratio(pm, pk)} / "
                f"{_ratio(pt, pk)} | {errs[0]} / {errs[1]} |"
            )
    lines += [
        "",
        f"| size | disk after {3 * cells} cells, MiB (ipykernel / Kishu / ipytui) | "
        "settled | undo one cell ms, Kishu (right) | ipytui (right) | values right after "
        "the cells (ipykernel / Kishu / ipytui) |",
        "|---|---|---|---|---|---|",
    ]
    for mib, r in results.items():
        disk = " / ".join(f"{r[k]['disk_after_cells'] / 2**20:.1f}" for k in KINDS)
        settled = " / ".join(f"{r[k]['disk_settled'] / 2**20:.1f}" for k in KINDS)
        undo = [
            f"{r[k]['undo_ms']:.0f} ({r[k]['undo_right']})" if "undo_ms" in r[k] else "-"
            for k in ("kishu", "ipytui")
        ]
        right = " / ".join(str(r[k]["values_right"]) for k in KINDS)
        lines.append(f"| {mib} MiB | {disk} | {settled} | {undo[0]} | {undo[1]} | {right} |")
    lines += ["", "goals (ipytui/ipykernel medians of this run):"]
    for mib, r in results.items():
        for name, goal in GOALS:
            ratio = statistics.median(r["ipytui"]["times"][name]) / statistics.median(
                r["ipykernel"]["times"][name]
            )
            lines.append(
                f"  {'PASS' if ratio <= goal else 'MISS'}  {mib} MiB {name} <= {goal}x"
                f"   {ratio:.2f}x"
            )
        if "undo_ms" in r["ipytui"] and mib >= 1024:
            t = r["ipytui"]
            ok = t["undo_ms"] / 1e3 < UNDO_GOAL_S and t["undo_right"]
            lines.append(
                f"  {'PASS' if ok else 'MISS'}  {mib} MiB undo one cell < {UNDO_GOAL_S} s"
                f" and right   {t['undo_ms']:.0f} ms ({t['undo_right']})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,256,1024", help="namespace sizes in MiB")
    parser.add_argument("--cells", type=int, default=5, help="cells of each kind, back to back")
    parser.add_argument(
        "--cases",
        default="all",
        help="correctness cases to run: all, none, or names separated by commas",
    )
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait after each cell (0: back to back)")
    parser.add_argument("--ipytui-protection", default="cell", choices=("cell", "auto", "idle"),
                        help="ipytui's protection level (cell: every cell undoable at once)")
    args = parser.parse_args(argv)
    if args.ipytui_protection != "cell":
        command = KERNEL_COMMANDS["ipytui-cell"]
        command[command.index("--protection") + 1] = args.ipytui_protection
    if not kishu_available():
        print("kishu is not installed: pip install 'ipytui[bench]' (kishu==0.3.4)", file=sys.stderr)
        return 2
    wanted = (
        [c.name for c in CASES]
        if args.cases == "all"
        else []
        if args.cases == "none"
        else [s.strip() for s in args.cases.split(",")]
    )
    unknown = set(wanted) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {[c.name for c in CASES]}")
    cap = _available_mib() // 2 // 3
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if skipped := [s for s in sizes if s > cap]:
        print(f"skipped sizes {skipped} MiB: over the cap {cap} MiB", file=sys.stderr)
    load_before = os.getloadavg()[0]
    install_handlers()
    results: dict[int, dict[str, dict[str, Any]]] = {}
    cases: dict[str, Any] = {}
    try:
        for i, mib in enumerate(s for s in sizes if s <= cap):
            results[mib] = {}
            for kind in KINDS[i % 3 :] + KINDS[: i % 3]:
                t0 = time.perf_counter()
                results[mib][kind] = measure_retrying(kind, mib, args.cells, args.pause)
                print(f"  {mib:5} MiB {kind:9} {time.perf_counter() - t0:6.1f}s", file=sys.stderr)
        if wanted:
            t0 = time.perf_counter()
            cases = run_cases(CASE_KINDS, wanted)
            print(f"  cases {time.perf_counter() - t0:6.1f}s", file=sys.stderr)
    finally:
        kill_all()
    print(render(results, args.cells))
    if cases:
        print("\n" + render_cases(cases, CASE_KINDS))
    spacing = f"{args.pause:g} s apart" if args.pause else "back to back"
    print(
        f"\n(median of {args.cells} cells per kind, {spacing}; ipytui at --protection "
        f"{args.ipytui_protection}; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cpus)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"sizes": {str(k): v for k, v in results.items()}, "cases": cases}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
