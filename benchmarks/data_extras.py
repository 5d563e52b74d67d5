"""The data benchmark's extras: the journal's size after many cells, and the plot.

``journal_sizes(cells)`` runs ``cells`` cells that print a line (``print(i, "x" * 40)``)
on a fresh ipytui kernel and on a fresh ipykernel, each in its own workdir, and
reports the files that keep the history afterwards: ipytui's journal (SQLite,
WAL; inputs *and* outputs, for scrollback replay and forensics) next to
IPython's ``history.sqlite`` (inputs only, IPython's default). Correctness: the
journal holds ``cells`` rows of cells and of outputs, and the last cell's output
text is the expected one.

``plot(results, path)`` draws per-cell time and peak PSS against the namespace
size, ipytui next to ipykernel, one line per cell kind (matplotlib, Agg);
``python benchmarks/data_extras.py OUT.png RUN1.json RUN2.json`` draws it from
the ``--json`` files of several runs.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from kernel_bench import KernelRun
from procs import Workdir

BATCH = 50  # cells sent before waiting for them (the client pipelines, as a notebook's Run All)


def _run_cells(run: KernelRun, cells: int) -> float:
    client = run.client
    t0 = time.perf_counter()
    for start in range(0, cells, BATCH):
        ids = [
            client.execute(f'print({i}, "x" * 40)') for i in range(start, min(cells, start + BATCH))
        ]
        for msg_id in ids:
            client.wait_done(msg_id, 120)
    return time.perf_counter() - t0


def _files_size(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())


def _journal_check(path: Path, cells: int) -> bool:
    """The journal holds every cell and its output; the last output is the expected one."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        n_cells = db.execute("select count(*) from cells").fetchone()[0] if "cells" in tables else 0
        text = " ".join(
            str(r)
            for r in db.execute(
                "select content_json from outputs order by cell_id desc, seq desc limit 3"
            )
        )
    finally:
        db.close()
    return n_cells >= cells and f"{cells - 1} {'x' * 40}" in text


def journal_sizes(cells: int) -> dict[str, Any]:
    """Size of what keeps the history after ``cells`` printing cells, both kernels."""
    out: dict[str, Any] = {"cells": cells}
    for kind in ("ipytui", "ipykernel"):
        wd = Workdir()
        run = KernelRun(kind, wd)
        run.start(lambda *_: None)
        try:
            seconds = _run_cells(run, cells)
        finally:
            run.stop()
        if kind == "ipytui":
            journal = wd.root / "data" / "journal.sqlite3"
            files = [journal, journal.with_name(journal.name + "-wal")]
            right = _journal_check(journal, cells)
        else:
            history = wd.root / "ipython" / "profile_default" / "history.sqlite"
            files = [history, history.with_name(history.name + "-journal")]
            right = history.exists()
        out[kind] = {"bytes": _files_size(*files), "seconds": seconds, "right": right}
    return out


def render_journal(j: dict[str, Any]) -> str:
    a, b = j["ipytui"], j["ipykernel"]
    return "\n".join(
        [
            f"| after {j['cells']} cells printing a line | ipytui journal (inputs + outputs) | "
            "IPython history.sqlite (inputs only) | ratio |",
            "|---|---|---|---|",
            f"| size MiB (right) | {a['bytes'] / 2**20:.2f} ({a['right']}) | "
            f"{b['bytes'] / 2**20:.2f} ({b['right']}) | {a['bytes'] / max(1, b['bytes']):.2f}x |",
            f"| time for the cells s | {a['seconds']:.1f} | {b['seconds']:.1f} | "
            f"{a['seconds'] / b['seconds']:.2f}x |",
        ]
    )


def plot(results: dict[int, dict[str, dict[str, Any]]], cells: list[str], path: Path) -> None:
    """Median time per cell, and peak PSS during the in-place cells and overall, against
    the size: one colour per cell kind, ipytui solid, ipykernel dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for n, name in enumerate(cells):
        for kind, style in (("ipytui", "-o"), ("ipykernel", "--x")):
            times = [statistics.median(results[s][kind]["times"][name]) for s in sizes]
            left.plot(sizes, times, style, color=f"C{n}", label=f"{name} ({kind})")
    for kind, style in (("ipytui", "-o"), ("ipykernel", "--x")):
        inplace = [max(results[s][kind]["pss"]["inplace"]) for s in sizes]
        peak = [max(max(v) for v in results[s][kind]["pss"].values()) for s in sizes]
        right.plot(sizes, inplace, style, color="C0", label=f"in-place cells ({kind})")
        right.plot(sizes, peak, style, color="C1", label=f"any cell, `new` included ({kind})")
    left.set(
        xlabel="namespace (MiB)",
        ylabel="median ms per cell (log)",
        yscale="log",
        title="time per cell",
    )
    right.set(xlabel="namespace (MiB)", ylabel="MiB", title="peak PSS of the kernel's processes")
    left.legend(fontsize=6, ncol=2)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(json_paths: list[Path], path: Path) -> None:
    """The plot from the --json files of several runs (sizes merged)."""
    import json

    results: dict[int, dict[str, dict[str, Any]]] = {}
    for json_path in json_paths:
        raw = json.loads(json_path.read_text())
        results.update({int(k): v for k, v in raw.items() if k.isdigit()})
    cells = list(next(iter(results.values()))["ipytui"]["times"])
    plot(results, cells, path)


if __name__ == "__main__":
    import sys

    replot([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))
