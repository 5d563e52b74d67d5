"""The undo benchmark (ipykernel, ipykernel + Kishu, ipytui) still runs end to end.

Smallest size, one cell of each kind, two correctness cases: every figure is
there and is a number, the cells' values are right, every case has a verdict
and the plain ipykernel shows each change, nothing is left running or on
disk. Never a timing. Skipped where Kishu (an optional benchmark dependency)
is not installed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytest.importorskip("kishu")

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "undo_bench.py"
KINDS = ("ipykernel", "kishu", "ipytui")
CASE_KINDS = ("ipykernel", "kishu", "kishu-cell", "ipytui")
VERDICTS = {"right", "wrong", "refused", "error", "changed", "unchanged"}

pytestmark = pytest.mark.timeout(600)


def test_undo_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "undo.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--sizes",
            "0",
            "--cells",
            "1",
            "--cases",
            "rebinding,lambda",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    by_kind = report["sizes"]["0"]
    assert set(by_kind) == set(KINDS)
    for kind, res in by_kind.items():
        assert set(res["times"]) == {"inplace", "small", "nothing"}, kind
        for name, times in res["times"].items():
            assert len(times) == 1 and all(math.isfinite(t) and t > 0 for t in times), (kind, name)
            assert res["peak_pss"][name] > 0, (kind, name)
        assert res["values_right"] is True, (kind, res)
        assert not res["errors"], (kind, res["errors"])
        assert not psutil.pid_exists(res["pid"]) or psutil.Process(res["pid"]).status() == "zombie"
        assert not Path(res["workdir"]).exists(), f"{kind} left its workdir"
    assert "undo_ms" not in by_kind["ipykernel"]  # no undo there: no figure, not a zero
    # Whether each undo was right is the benchmark's finding, not this test's: ipytui's
    # %undo is checked in test_protection.py, and it fails now and then on a busy
    # machine (issue 22: "the restore point died"); a miss must show what was seen.
    for kind in ("kishu", "ipytui"):
        res = by_kind[kind]
        assert isinstance(res["undo_right"], bool) and res["undo_ms"] > 0, (kind, res)
        assert res["undo_right"] or res["undo_seen"] or res["undo_said"], (kind, res)

    cases = report["cases"]
    assert set(cases) == {"rebinding", "lambda"}
    for name, by in cases.items():
        assert set(by) == set(CASE_KINDS) and {r["verdict"] for r in by.values()} <= VERDICTS, by
        assert by["ipykernel"]["verdict"] == "changed", (name, by)  # the case can fail
        assert by["ipytui"]["verdict"] in ("right", "wrong"), (name, by)  # see above
    for text in ("Kishu ratio", "undo one cell", "kind of change", "load average"):
        assert text in proc.stdout, text
