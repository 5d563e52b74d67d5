"""Data-scale benchmark: ipytui's crash protection and undo next to ipykernel, one run.

    python benchmarks/data_bench.py                      # sizes 0, 256, 1024 MiB, 5 cells each
    python benchmarks/data_bench.py --sizes 0,256 --cells 3 --json out.json
    python benchmarks/data_bench.py --sizes 1024 --ipytui-flags "--snapshot-budget 512M"
    python benchmarks/data_bench.py --journal-cells 10000 --plot benchmarks/data_scale.png

For each namespace size (a float64 numpy array ``big``; sizes are capped
below half of the available memory) a fresh ipytui kernel and a fresh
ipykernel (alternating which goes first) run the same cells back to back,
each ``--cells`` times: ``big += 1`` (rewrite in place), ``new = big + 1``
(a new array), ``s = float(big.sum())`` (read only), ``x = 1`` (a small
change), ``pass`` (nothing).
Per cell: time from send to reply and idle (the lean client of run.py), and
the kernel tree's PSS right after it (smaps_rollup of every process; the
copy-on-write pages a snapshot keeps stay after the cell, so this is the
peak a cell leaves). Each cell kind's result is checked (the array's values
after the cells), and the table says how many were right.

ipytui only: the protection level it chose and showed (kernel_info), the
cost of ``%undo`` of one in-place cell (checked: the array is back), and
crash -> restored (segfault, then ``print(big[0])`` done and right). Before the
undo's in-place cell and before the crash it waits (untimed) until the newest
restore point has spilled its big buffers to disk (worker/spill.py), so both
include reading them back; what the kept points hold in RAM and on disk then
is reported beside them. ``--journal-cells`` and ``--plot``: data_extras.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data_extras  # noqa: E402
from kernel_bench import KernelRun  # noqa: E402
from procs import KERNEL_COMMANDS, Workdir, install_handlers, kill_all, tree  # noqa: E402

CELLS = {
    "inplace": "big += 1",
    "new": "new = big + 1",
    "read": "s = float(big.sum())",
    "small": "x = 1",
    "nothing": "pass",
}
KINDS = ("ipytui", "ipykernel")


def tree_pss(pid: int) -> float:
    """PSS of a process and its descendants, MiB (smaps_rollup: one read per process)."""
    import psutil

    total = 0
    try:
        procs = tree(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        try:
            with open(f"/proc/{proc.pid}/smaps_rollup", "rb") as f:
                for line in f.read().splitlines():
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total / 2**20


def _value(run: KernelRun, expr: str) -> str:
    """The stdout of ``print(expr)`` (the result check)."""
    client = run.client
    msg_id = client.execute(f"print({expr})")
    client.streams[msg_id] = []
    client.wait_done(msg_id, 120)
    return "".join(client.streams.pop(msg_id)).strip()


def measure(kind: str, wd: Workdir, mib: int, cells: int) -> dict[str, Any]:
    """One kernel at one size: per-cell times, PSS after each, correctness, extras."""
    run = KernelRun(kind, wd)
    out: dict[str, Any] = {"times": {}, "pss": {}, "right": {}, "checks": {}}
    run.start(lambda *_: None)
    try:
        client = run.client
        n = mib * 2**20 // 8
        assert client.run(f"import numpy as np; big = np.ones({n}); new = None; s = 0", 300)[
            "status"] == "ok"
        out["pss_start"] = tree_pss(run.proc.pid)
        for name, code in CELLS.items():
            if n == 0 and name not in ("nothing", "small"):
                code = code.replace("big", "np.ones(0)") if name != "inplace" else "pass"
            times, pss = [], []
            for _ in range(cells):
                t0 = time.perf_counter()
                done, reply = client.wait_done(client.execute(code), 300)
                times.append((done - t0) * 1e3)
                pss.append(tree_pss(run.proc.pid))
                if reply.get("status") != "ok":
                    out["checks"].setdefault(name, []).append(str(reply.get("evalue")))
            out["times"][name], out["pss"][name] = times, pss
        expected = 1.0 + (cells if n else 0)
        out["right"]["inplace"] = n == 0 or _value(run, "big[0], big[-1]") == f"{expected} {expected}"
        out["right"]["new"] = n == 0 or _value(run, "new[0]") == f"{expected + 1}"
        out["right"]["read"] = n == 0 or _value(run, "s") == f"{float(n) * expected}"
        out["right"]["small"] = _value(run, "x") == "1"
        out["right"]["nothing"] = not out["checks"]
        if kind == "ipytui":
            out.update(_ipytui_extras(run, n, expected))
    finally:
        run.stop()
    return out


def _ipytui_extras(run: KernelRun, n: int, value: float) -> dict[str, Any]:
    """The level shown, %undo of one in-place cell, and crash -> restored."""
    client = run.client
    extras: dict[str, Any] = {"level": _protection(run).get("level")}
    if n:
        time.sleep(2.5)  # past idle_seconds: the idle level's restore point is taken (untimed)
        _spilled(run)
        client.run("big += 1", 300)
        t0 = time.perf_counter()
        done, reply = client.wait_done(client.execute("%undo"), 300)
        extras["undo_ms"] = (done - t0) * 1e3
        t0 = time.perf_counter()  # the first full read after it: a lazy undo pays its reads here
        read = _value(run, "float(big.sum())")
        extras["undo_read_ms"] = (time.perf_counter() - t0) * 1e3
        extras["undo_right"] = reply.get("status") == "ok" and read == f"{float(n) * value}" \
            and _value(run, "big[0], big[-1]") == f"{value} {value}"
    extras["level_after"] = _protection(run).get("level")
    time.sleep(2.5)  # a restore point of the current state at any level (untimed)
    status = _spilled(run) if n else _protection(run)
    extras.update(held=status.get("held", 0), on_disk=status.get("on_disk", 0),
                  spill=status.get("spill", ""))
    t0 = time.perf_counter()
    client.execute("import ctypes; ctypes.string_at(0)", stop_on_error=False)
    seen = _value(run, "big[0]" if n else "1.0")
    extras["crash_ms"] = (time.perf_counter() - t0) * 1e3
    extras["crash_right"] = seen == (f"{value}" if n else "1.0")
    return extras


def _spilled(run: KernelRun, timeout: float = 60.0) -> dict[str, Any]:
    """kernel_info's protection once the newest point says how its spill went."""
    deadline = time.monotonic() + timeout
    while True:
        status = _protection(run)
        if status.get("spill") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _protection(run: KernelRun) -> dict[str, Any]:
    _, _, content = run.client.wait_reply(run.client.send("shell", "kernel_info_request", {}), 30)
    return (content.get("ipytui") or {}).get("protection") or {}


def _available_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def render(results: dict[int, dict[str, dict[str, Any]]], cells: int) -> str:
    med = statistics.median
    lines = ["| size | cell | ipytui ms | ipykernel ms | time ratio | slowest cell ms (ipytui / "
             "ipykernel) | ipytui PSS MiB | ipykernel PSS MiB | PSS ratio | right (ipytui/ipykernel) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mib, by_kind in results.items():
        a, b = by_kind["ipytui"], by_kind["ipykernel"]
        for name in CELLS:
            ta, tb = med(a["times"][name]), med(b["times"][name])
            pa, pb = max(a["pss"][name]), max(b["pss"][name])
            slow = f"{max(a['times'][name]):.0f} / {max(b['times'][name]):.0f}"
            lines.append(f"| {mib} MiB | {name} | {ta:.1f} | {tb:.1f} | {ta / tb:.2f}x | {slow} | {pa:.0f} "
                         f"| {pb:.0f} | {pa / pb:.2f}x | {a['right'][name]}/{b['right'][name]} |")
    lines += ["", "| size | level chosen | after undo | %undo ms (right) | first full read after "
              "it ms (ipykernel's read cell) | crash -> restored ms (right) | points hold: RAM / "
              "disk MiB | newest point |", "|---|---|---|---|---|---|---|---|"]
    for mib, by_kind in results.items():
        a = by_kind["ipytui"]
        undo = f"{a['undo_ms']:.0f} ({a['undo_right']})" if "undo_ms" in a else "-"
        read = (f"{a['undo_read_ms']:.0f} ({med(by_kind['ipykernel']['times']['read']):.0f})"
                if "undo_read_ms" in a else "-")
        lines.append(f"| {mib} MiB | {a['level']} | {a['level_after']} | {undo} | {read} | "
                     f"{a['crash_ms']:.0f} ({a['crash_right']}) | {a['held'] / 2**20:.0f} / "
                     f"{a['on_disk'] / 2**20:.0f} | {a['spill'] or '-'} |")
    lines.append(f"\nmedian of {cells} back-to-back cells (the slowest is the one that paid the "
                 "restore point's copies); PSS: the largest after any of them")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,256,1024", help="namespace sizes in MiB")
    parser.add_argument("--cells", type=int, default=5, help="cells of each kind, back to back")
    parser.add_argument("--json", help="write the raw figures here")
    parser.add_argument("--journal-cells", type=int, default=0,
                        help="also measure the journal's size after this many printing cells")
    parser.add_argument("--plot", help="save the curves here (png)")
    parser.add_argument("--ipytui-flags", default="",
                        help="extra kernel flags for ipytui, e.g. '--snapshot-budget 512M'")
    args = parser.parse_args(argv)
    # The cap: a size under half the available memory. One kernel runs at a
    # time, and its peak is `big` and `new` plus at most one copy a point still
    # shares while it spills: three sizes must fit too, with 2 GiB left over.
    available = _available_mib()
    cap = min(available // 2, (available - 2048) // 3)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    skipped = [s for s in sizes if s > cap]
    sizes = [s for s in sizes if s <= cap]
    if skipped:
        print(f"skipped sizes {skipped} MiB: over the cap {cap} MiB", file=sys.stderr)
    if args.ipytui_flags:
        command = KERNEL_COMMANDS["ipytui"]
        command[-1:-1] = shlex.split(args.ipytui_flags)  # before the trailing -f
    install_handlers()
    wd = Workdir()
    results: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        for i, mib in enumerate(sizes):
            results[mib] = {}
            for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
                t0 = time.perf_counter()
                results[mib][kind] = measure(kind, wd, mib, args.cells)
                print(f"  {mib:5} MiB {kind:9} {time.perf_counter() - t0:5.1f}s", file=sys.stderr)
    finally:
        kill_all()
    print(render(results, args.cells))
    print(f"\n(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cpus)")
    if args.plot and results:
        data_extras.plot(results, list(CELLS), Path(args.plot))
    if args.journal_cells:
        journal = data_extras.journal_sizes(args.journal_cells)
        print("\n" + data_extras.render_journal(journal))
        print(f"\n(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cpus)")
        results_journal = journal
    else:
        results_journal = None
    if args.json:
        raw: dict[str, Any] = {str(k): v for k, v in results.items()}
        if results_journal:
            raw["journal"] = results_journal
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
