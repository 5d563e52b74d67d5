"""The undo-safety benchmark still runs end to end (this tree as both sides, 0 MiB,
one repeat): every figure is there, every undo was right, and the stuck point
was answered with UndoFailed, the namespace intact. Never a timing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "undo_safety_bench.py"

pytestmark = pytest.mark.timeout(300)


def test_undo_safety_benchmark_runs_and_checks_every_undo(tmp_path: Path) -> None:
    out = tmp_path / "safety.json"
    argv = [
        sys.executable,
        str(BENCH),
        "--reference",
        sys.executable,
        "--sizes",
        "0",
        "--repeats",
        "1",
        "--hang-cap",
        "60",
        "--json",
        str(out),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    (row,) = report["undo"]
    for tree in ("this", "reference"):
        assert row[tree]["right"] == row[tree]["of"] == 1, row
        assert math.isfinite(row[tree]["undo_ms"]) and row[tree]["undo_ms"] > 0, row
        stuck = report["stuck"][tree]
        assert stuck["ename"] == "UndoFailed" and stuck["intact"] is True, stuck
    assert "namespace intact: True" in proc.stdout
