"""benchmarks/interleaved.py runs end to end (tiny counts): two kernels side by
side, the first one the reference. Shape only, never a timing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "interleaved.py"

pytestmark = pytest.mark.timeout(300)


def test_two_kernels_side_by_side_give_a_median_and_a_ratio_each() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "1", "--cell", "inplace", "--cells", "3",
         "--warm", "1", "ref=ipykernel", "cell=ipytui-cell:IPYTUI_BENCH_MARK=1"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^  (\w+) +([\d.]+) ms +([\d.]+)x$", done.stdout, re.M)
    assert [label for label, _, _ in rows] == ["ref", "cell"], done.stdout
    assert rows[0][2] == "1.00" and float(rows[1][1]) > 0, done.stdout


def test_a_malformed_kernel_is_refused_with_a_message() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "no-equals-sign"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "label=kind" in done.stderr
