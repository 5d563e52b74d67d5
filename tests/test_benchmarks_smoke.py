"""The benchmark still runs end to end (tiny counts); it checks shape, never timings."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
ONLY_IPYTUI = {"crash_error_reply", "ui_key_latency"}  # ipykernel has no such figure
MAYBE_ONE_SIDED = {"shutdown"}  # a kernel slower than --quick's grace period has no figure
TINY = ["--quick", "--reps", "1", "--lines", "2000", "--exec-n", "5", "--pipelined-n", "10",
        "--assign-n", "3", "--complete-n", "4", "--busy-sleep", "0.3", "--ui-lines", "2000",
        "--eco-n", "2"]

# Generous: under a loaded machine (both cores busy) the quick run took over 220 s,
# and subprocess.run's timeout ends it with SIGKILL, which read as a crash.
RUN_TIMEOUT = 600
pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 60)


def _metrics() -> dict[str, tuple[str, str, bool]]:
    sys.path.insert(0, str(RUN.parent))
    try:
        import run  # type: ignore[import-not-found]

        return dict(run.METRICS)
    finally:
        sys.path.remove(str(RUN.parent))


def test_benchmark_runs_and_reports_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # A session of its own: a run that times out is killed with its kernels, so none
    # is left printing for the tests after it (one was, 35 minutes, at full CPU).
    run = subprocess.Popen([sys.executable, str(RUN), *TINY, "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workdir = re.search(r"workdir (\S+)", proc.stderr).group(1)
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if any(workdir in part for part in p.info.get("cmdline") or [])]
    assert not leftovers, f"processes left running: {leftovers}"

    report = json.loads(out.read_text())
    summary, pending = report["summary"], report["pending"]
    ui_possible = shutil.which("tmux") is not None
    for name, (label, _unit, _) in _metrics().items():
        if name not in summary and (name == "ui_key_latency" or not ui_possible):
            assert name in pending, f"{name}: neither figures nor a pending reason"
            continue
        assert name in summary, f"no figures for {name}"
        assert label.split("N-line")[0].split("N lines")[0].strip() in proc.stdout
        row = summary[name]
        assert "ipytui" in row, name
        for kind in ("ipytui", "ipykernel"):
            if kind in row:
                assert isinstance(row[kind]["median"], float) and isinstance(row[kind]["p99"], float)
        if name in ONLY_IPYTUI or (name in MAYBE_ONE_SIDED and "ratio" not in row):
            continue
        assert "ipykernel" in row, name
        ratio = row["ratio"]
        assert isinstance(ratio, float) and not math.isnan(ratio), (name, ratio)
    verdicts = {t["verdict"] for t in report["targets"]}
    assert verdicts <= {"PASS", "MISS", "PENDING"}
    assert "targets" in proc.stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_sharing_benchmark_runs_and_counts_correct_answers() -> None:
    """Two UIs per kernel, tiny counts: every row is there and nothing was missed."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sharing_bench.py"),
                           "--keys", "2", "--cells", "1"],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {tuple(line.split()[:2]): line for line in proc.stdout.splitlines()
            if re.match(r"(draft|cell) +(ipytui|ipykernel) ", line)}
    assert set(rows) == {("draft", "ipytui"), ("cell", "ipytui"), ("cell", "ipykernel")}
    assert re.search(r"2 ok\s+0 missed", rows[("draft", "ipytui")]), proc.stdout
    assert all(re.search(r"1 ok\s+0 missed", rows[("cell", k)]) for k in ("ipytui", "ipykernel"))
    ratio = re.search(r"cell ratio ipytui/ipykernel \(medians\): (\S+)", proc.stdout)
    assert ratio and math.isfinite(float(ratio.group(1)))
