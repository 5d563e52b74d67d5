#!/usr/bin/env python
"""ipytui's kernel and UI side by side with ipykernel (and jupyter console), in one run.

    python benchmarks/run.py [--quick] [--reps N] [--only NAMES] [--json out.json]

Kernels alternate per repetition (ipytui first on even reps, ipykernel first
on odd ones); each repetition starts fresh processes. The table shows the
median and p99 (nearest rank over every sample) per kernel and the ratio
ipytui/ipykernel of the medians, then PASS/MISS per target. See README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs  # noqa: E402
from kernel_bench import Sizes, run_kernel_rep  # noqa: E402

GROUPS = ("startup", "execute", "stdout", "complete", "ecosystem", "crash", "memory", "robust", "ui")
KINDS = ("ipytui", "ipykernel")

# name: (label, unit, higher_is_better)
METRICS = {
    "startup": ("spawn -> kernel_info_reply", "ms", False),
    "startup_exec": ("spawn -> first execute done", "ms", False),
    "exec_pass": ('execute("pass") reply+idle', "ms", False),
    "exec_rps": ('execute("pass") pipelined', "req/s", True),
    "exec_assign": ('execute("x = i") back to back', "ms", False),
    "exec_assign_spaced": ('execute("x = i") 50 ms apart', "ms", False),
    "stdout": ("print N lines -> idle", "ms", False),
    "corpus_first_total": ("complete corpus, 1st pass after cold start, sum", "ms", False),
    "corpus_first_hits": ("  ...fraction right (all cases)", "frac", True),
    "corpus_first_inference": ("  ...each inference case", "ms", False),
    "corpus_first_inference_hits": ("  ...fraction right (inference cases)", "frac", True),
    "corpus_rerun_total": ("complete corpus, 1st pass, next start, sum", "ms", False),
    "corpus_rerun_hits": ("  ...fraction right (all cases)", "frac", True),
    "corpus_steady": ("complete corpus, warm, each call", "ms", False),
    "corpus_steady_hits": ("  ...fraction right (all cases)", "frac", True),
    "corpus_steady_inference": ("complete corpus, warm, each inference case", "ms", False),
    "corpus_steady_inference_hits": ("  ...fraction right (inference cases)", "frac", True),
    "complete_busy": ("complete while a cell runs", "ms", False),
    "complete_busy_before_cell_end": ("  ...answered before the cell ended", "frac", True),
    "complete_busy_hits": ("  ...found the expected match", "frac", True),
    "plot_show": ("plt.plot + plt.show() -> done", "ms", False),
    "plot_png": ("  ...a PNG was shown", "frac", True),
    "widget_update": ("widget comm_msg update -> idle", "ms", False),
    "widget_value_ok": ("  ...the Python value followed", "frac", True),
    "crash_error_reply": ("segfault -> error reply+idle", "ms", False),
    "crash_restored": ("segfault -> restored, next cell done", "ms", False),
    "crash_state_kept": ("  ...variables survived", "frac", True),
    "mem_start_pss": ("memory after start, PSS sum", "MiB", False),
    "mem_start_rss": ("memory after start, RSS sum", "MiB", False),
    "mem_start_uss": ("memory after start, USS sum", "MiB", False),
    "mem_start_procs": ("  processes counted", "n", False),
    "mem_after_pss": ("memory after the run, PSS sum", "MiB", False),
    "mem_after_rss": ("memory after the run, RSS sum", "MiB", False),
    "mem_after_uss": ("memory after the run, USS sum", "MiB", False),
    "mem_after_procs": ("  processes counted", "n", False),
    "shutdown": ("shutdown_request -> process exit", "ms", False),
    "slowsub_mem": ("stalled IOPub subscriber, N lines: RSS growth", "MiB", False),
    "slowsub_lines": ("  ...lines the reading client got", "frac", True),
    "interrupt_silence": ("interrupt a printing cell -> last output", "ms", False),
    "interrupt_stopped": ("  ...cell ended with KeyboardInterrupt", "frac", True),
    "ui_startup": ("UI spawn -> interactive prompt", "ms", False),
    "ui_attach": ("UI --existing -> interactive prompt", "ms", False),
    "ui_stream": ("UI: N-line print until last line shown", "ms", False),
    "ui_key_latency": ("UI: keypress -> on screen, mid-stream", "ms", False),
    "ui_mem_after_pss": ("UI process memory after it, PSS", "MiB", False),
    "ui_mem_after_rss": ("UI process memory after it, RSS", "MiB", False),
}

# name: (metric, kind of check, bound, text)
TARGETS = [
    ("startup <= 0.5x", "startup", "ratio", 0.5),
    ("UI startup <= 0.5x", "ui_startup", "ratio", 0.5),
    ("execute round trip <= 0.25x", "exec_pass", "ratio", 0.25),
    ("stdout time <= 0.3x", "stdout", "ratio", 0.3),
    ("completion warm median, inference <= 0.5x", "corpus_steady_inference", "ratio", 0.5),
    ("completion 1st pass (cold) total <= 0.5x", "corpus_first_total", "ratio", 0.5),
    ("completion right >= ipykernel, 1st pass", "corpus_first_hits", "not_below", 0.0),
    ("completion right >= ipykernel, warm", "corpus_steady_hits", "not_below", 0.0),
    ("completion answered while the cell runs", "complete_busy_before_cell_end", "all_ipytui", 1.0),
    ("crash-to-restored < 1 s", "crash_restored", "abs_ipytui", 1000.0),
    ("total memory (PSS) <= 1x, after start", "mem_start_pss", "ratio", 1.0),
    ("total memory (PSS) <= 1x, after the run", "mem_after_pss", "ratio", 1.0),
    ("stalled subscriber costs < 64 MiB", "slowsub_mem", "abs_ipytui_mib", 64.0),
    ("interrupt to silence < 0.3 s", "interrupt_silence", "abs_ipytui", 300.0),
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is their maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in METRICS:
        row: dict[str, object] = {}
        for kind in KINDS:
            values = samples.get(kind, {}).get(name, [])
            if values:
                row[kind] = {"median": statistics.median(values), "p99": percentile(values, 99),
                             "n": len(values)}
        a, b = row.get("ipytui"), row.get("ipykernel")
        if a and b and b["median"]:
            row["ratio"] = a["median"] / b["median"]
        elif a and b:
            row["ratio"] = math.inf if a["median"] else 1.0
        if row:
            out[name] = row
    return out


def judge(summary: dict[str, dict], pending: dict[str, str]) -> list[tuple[str, str, str]]:
    results = []
    for text, metric, check, bound in TARGETS:
        row = summary.get(metric)
        if row is None or "ipytui" not in row:
            results.append((text, "PENDING", pending.get(metric, "not measured in this run")))
            continue
        ours = row["ipytui"]
        if check == "ratio":
            if "ratio" not in row:
                results.append((text, "PENDING", "no ipykernel figure"))
                continue
            ok, got = row["ratio"] <= bound, f"{row['ratio']:.2f}x"
        elif check == "not_below":
            theirs = row.get("ipykernel")
            if theirs is None:
                results.append((text, "PENDING", "no ipykernel figure"))
                continue
            ok = ours["median"] >= theirs["median"]
            got = f"{ours['median']:.2f} vs {theirs['median']:.2f}"
        elif check == "all_ipytui":
            ok, got = ours["median"] >= bound and ours["p99"] >= bound, f"{ours['median']:.2f}"
            got = "always" if ok else "not always"
        elif check == "abs_ipytui_mib":
            ok, got = ours["p99"] < bound, f"p99 {ours['p99']:.0f} MiB"
        else:
            ok, got = ours["p99"] < bound, f"p99 {ours['p99']:.0f} ms"
        results.append((text, "PASS" if ok else "MISS", got))
    return results


def _fmt(value: float, unit: str) -> str:
    if unit in ("ms", "MiB"):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if unit == "req/s":
        return f"{value:,.0f}"
    if unit == "frac":
        return f"{value:.2f}"
    return f"{value:g}"


def render(summary: dict[str, dict], verdicts, pending: dict[str, str], sizes: Sizes) -> str:
    lines = []
    head = f"{'metric':44} {'unit':>5} | {'ipytui med':>10} {'p99':>9} | {'ipykernel med':>13} {'p99':>9} | {'ratio':>7}"
    lines.append(head)
    lines.append("-" * len(head))
    for name, (label, unit, _) in METRICS.items():
        label = label.replace("N-line", f"{sizes.lines}-line").replace("N lines", f"{sizes.lines} lines")
        row = summary.get(name)
        if row is None:
            if name in pending:
                lines.append(f"{label:44} {unit:>5} | pending: {pending[name]}")
            continue
        cells = []
        for kind, width in (("ipytui", 10), ("ipykernel", 13)):
            if kind in row:
                cells.append(f"{_fmt(row[kind]['median'], unit):>{width}} {_fmt(row[kind]['p99'], unit):>9}")
            else:
                cells.append(f"{'n/a':>{width}} {'':>9}")
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row and math.isfinite(row["ratio"]) else "n/a"
        lines.append(f"{label:44} {unit:>5} | {cells[0]} | {cells[1]} | {ratio:>7}")
    lines.append("")
    lines.append("targets (ratios are ipytui/ipykernel medians of this run):")
    for text, verdict, got in verdicts:
        lines.append(f"  {verdict:7} {text:42} {got}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller counts, 2 reps: under a minute")
    p.add_argument("--reps", type=int, help="repetitions (default 5, quick 2)")
    p.add_argument("--only", help=f"comma-separated groups: {','.join(GROUPS)}")
    p.add_argument("--json", metavar="PATH", help="write samples and summary as JSON")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (kernel logs)")
    p.add_argument("--lines", type=int, help="lines printed by the stdout test (default 200000)")
    p.add_argument("--exec-n", type=int, help="sequential execute round trips per rep")
    p.add_argument("--pipelined-n", type=int, help="executes sent at once for req/s")
    p.add_argument("--assign-n", type=int, help='sequential execute("x = i") per rep')
    p.add_argument("--complete-n", type=int,
                   help="warm completions per rep, in whole passes over the corpus (at least one)")
    p.add_argument("--busy-sleep", type=float, help="seconds the cell runs in the busy-completion test")
    p.add_argument("--ui-lines", type=int, help="lines printed in the UI stream test")
    p.add_argument("--eco-n", type=int, help="figures shown and widget updates per rep")
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> tuple[Sizes, int]:
    if args.quick:
        sizes = Sizes(exec_n=50, pipelined_n=100, assign_n=10, complete_n=8, lines=50_000,
                      busy_sleep=0.5, shutdown_grace=1.0, eco_n=5)
        ui_lines, reps = 50_000, 2
    else:
        sizes, ui_lines, reps = Sizes(), 200_000, 5
    for field in ("lines", "exec_n", "pipelined_n", "assign_n", "complete_n", "busy_sleep", "eco_n"):
        if getattr(args, field) is not None:
            setattr(sizes, field, getattr(args, field))
    sizes.ui_lines = args.ui_lines if args.ui_lines is not None else ui_lines  # type: ignore[attr-defined]
    return sizes, args.reps if args.reps is not None else reps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, reps = sizes_from(args)
    only = set(GROUPS) if not args.only else {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = only - set(GROUPS)
    if unknown:
        print(f"unknown groups: {', '.join(sorted(unknown))}; known: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    procs.install_handlers()
    wd = procs.Workdir()
    samples: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in KINDS}
    pending: dict[str, str] = {}
    started = time.perf_counter()
    load_before = os.getloadavg()
    print(f"ipytui benchmark: {reps} reps, {os.cpu_count()} cpus, load {load_before[0]:.1f}, "
          f"workdir {wd.root}", file=sys.stderr)

    def adder(kind: str):
        return lambda name, value: samples[kind][name].append(float(value))

    try:
        _warm_up(wd, "ui" in only)
        for rep in range(reps):
            order = KINDS if rep % 2 == 0 else KINDS[::-1]
            for kind in order:
                t0 = time.perf_counter()
                run_kernel_rep(kind, wd, sizes, only, adder(kind))
                print(f"  rep {rep + 1}/{reps} {kind:9} kernel {time.perf_counter() - t0:5.1f}s",
                      file=sys.stderr)
                if "robust" in only:
                    from robust_bench import run_robust_rep

                    t0 = time.perf_counter()
                    run_robust_rep(kind, wd, sizes.lines, adder(kind))
                    print(f"  rep {rep + 1}/{reps} {kind:9} robust {time.perf_counter() - t0:5.1f}s",
                          file=sys.stderr)
            if "ui" in only and not (args.quick and rep):  # quick: the UI once
                from ui_bench import run_ui_rep

                for kind in order:
                    t0 = time.perf_counter()
                    try:
                        run_ui_rep(kind, wd, sizes.ui_lines, adder(kind), pending)  # type: ignore[attr-defined]
                    except Exception as exc:  # noqa: BLE001 - one bad UI run must not lose the rest
                        print(f"  rep {rep + 1}/{reps} {kind:9} ui failed: {exc}", file=sys.stderr)
                        for name in METRICS:
                            if name.startswith("ui_"):
                                pending.setdefault(name, f"a {kind} UI run failed: {str(exc)[:60]}")
                        continue
                    print(f"  rep {rep + 1}/{reps} {kind:9} ui     {time.perf_counter() - t0:5.1f}s",
                          file=sys.stderr)
    finally:
        procs.kill_all()
        if not args.keep_workdir:
            shutil.rmtree(wd.root, ignore_errors=True)
    summary = summarize(samples)
    verdicts = judge(summary, pending)
    print(render(summary, verdicts, pending, sizes))
    load_after = os.getloadavg()
    print(f"\n({reps} reps in {time.perf_counter() - started:.0f}s, load average {load_before[0]:.1f} "
          f"before, {load_after[0]:.1f} after, {os.cpu_count()} cpus; ratio < 1 means ipytui is "
          "faster or smaller, except for req/s and fractions)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "reps": reps, "sizes": vars(sizes), "samples": samples, "summary": summary,
            "targets": [{"target": t, "verdict": v, "value": g} for t, v, g in verdicts],
            "pending": pending, "python": sys.version, "cpus": os.cpu_count(),
            "load_average": {"before": load_before, "after": load_after},
        }, indent=1, default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else o))
    return 0


def _warm_up(wd: procs.Workdir, ui: bool) -> None:
    """One untimed start of each kernel (page cache, .pyc files, IPython's profile dir)
    and, when UIs are measured, of each UI up to its prompt."""
    from kernel_bench import KernelRun

    for kind in KINDS:
        run = KernelRun(kind, wd)
        try:
            run.start(lambda name, value: None)
        finally:
            run.stop(grace=1.0)
    if ui:
        from ui_bench import warm_up_ui

        for kind in KINDS:
            warm_up_ui(kind, wd)


if __name__ == "__main__":
    sys.exit(main())
