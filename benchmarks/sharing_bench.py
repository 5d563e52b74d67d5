"""Sharing between two real UIs on one kernel (tmux): how soon the other UI sees it.

```
python benchmarks/sharing_bench.py            # 20 draft keystrokes, 8 cells per kernel
python benchmarks/sharing_bench.py --keys 40 --cells 12
```

- **draft**: one key typed (or erased) in UI A until UI B's peers panel shows
  A's whole new draft with the cursor line marked. ipytui only: no other
  Jupyter UI shares drafts, so there is no ratio; the goal is < 300 ms.
- **cell**: a one-line print run in UI A until its output is on UI B's screen.
  ipytui: two ``ipytui`` on one ipytui kernel. ipykernel: two ``jupyter
  console --existing`` on one ipykernel, B with ``include_other_output``.
  Reported side by side, with the ratio of the medians.

Every sample counts as correct only if the exact expected text appeared;
misses are counted next to the times. Screen polling (one tmux client per
look) limits the resolution to about 5-10 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from procs import KERNEL_COMMANDS, Workdir, install_handlers, kill_by_path, kill_tree, spawn  # noqa: E402
from ui_bench import Tmux, _shutdown  # noqa: E402

TIMEOUT = 30.0
UIS = {
    "ipytui": [sys.executable, "-m", "ipytui.app.cli", "--existing"],
    "ipykernel": [sys.executable, "-m", "jupyter_console", "--existing"],
}
OTHER_OUTPUT = "--ZMQTerminalInteractiveShell.include_other_output=True"
READY = {"ipytui": re.compile(r"Peers \(2\)"), "ipykernel": re.compile(r"In \[\d+\]:")}


def _start_kernel(kind: str, wd: Workdir) -> tuple[Path, int]:
    path = wd.connection_file(kind)
    proc = spawn([*KERNEL_COMMANDS[kind], str(path)], wd.env, wd.log(f"{kind}-kernel"))
    return path, proc.pid


def _open_pair(kind: str, wd: Workdir, path: Path) -> tuple[Tmux, Tmux]:
    first, second = Tmux(wd), Tmux(wd)
    first.respawn([*UIS[kind], str(path)])
    first.wait_screen(lambda s: re.search(r"In \[|● idle", s) is not None, 60, f"{kind} UI A")
    extra = [OTHER_OUTPUT] if kind == "ipykernel" else []
    second.respawn([*UIS[kind], str(path), *extra])
    for tmux in (first, second):
        tmux.wait_screen(lambda s: READY[kind].search(s) is not None, 60, f"{kind} UIs ready")
    return first, second


def measure_drafts(first: Tmux, second: Tmux, keys: int) -> tuple[list[float], int]:
    """Alternately type and erase one digit after ``v = 1``; time until B shows the draft."""
    first.keys("v = 1", literal=True)
    second.wait_screen(lambda s: "▸ v = 1" in s, TIMEOUT, "the first draft")
    times, misses = [], 0
    for i in range(keys):
        digit = str(i % 10)
        grows = i % 2 == 0
        expected = re.compile(rf"▸ v = 1{digit}\b" if grows else r"▸ v = 1\s")
        t0 = time.perf_counter()
        first.keys(digit, literal=True) if grows else first.keys("BSpace")
        try:
            t1, _ = second.wait_screen(lambda s, e=expected: e.search(s) is not None, TIMEOUT, "draft")
        except TimeoutError:
            misses += 1
            continue
        times.append((t1 - t0) * 1e3)
        if not grows:
            continue
        # Let the next key go out as its own message: a key inside the send interval
        # would be merged with this one, and its latency would look shorter than it is.
        time.sleep(0.15)
    return times, misses


def measure_cells(kind: str, first: Tmux, second: Tmux, cells: int) -> tuple[list[float], int]:
    """Run ``print('seen', N*7)`` in A; time from Enter until B shows ``seen <product>``."""
    if kind == "ipytui":
        first.keys("C-c")  # clear the draft the draft measurement left
    times, misses = [], 0
    for i in range(1, cells + 1):
        first.keys(f"print('seen', {1000 + i}*7)", literal=True)
        time.sleep(0.2)  # the code is typed (and shared) before the clock starts
        expected = f"seen {(1000 + i) * 7}"
        t0 = time.perf_counter()
        first.keys("Enter")
        try:
            t1, _ = second.wait_screen(lambda s, e=expected: e in s, TIMEOUT, "the other's output")
        except TimeoutError:
            misses += 1
            continue
        times.append((t1 - t0) * 1e3)
    return times, misses


def run_kind(kind: str, wd: Workdir, keys: int, cells: int) -> dict[str, tuple[list[float], int]]:
    path, pid = _start_kernel(kind, wd)
    first = second = None
    try:
        first, second = _open_pair(kind, wd, path)
        results = {}
        if kind == "ipytui":
            results["draft"] = measure_drafts(first, second, keys)
        results["cell"] = measure_cells(kind, first, second, cells)
        return results
    finally:
        for tmux in (first, second):
            if tmux is not None:
                with contextlib.suppress(Exception):
                    kill_tree(tmux.pane_pid())
                tmux.close()
        _shutdown(path)
        kill_tree(pid)
        kill_by_path(str(path))


def _row(name: str, kind: str, times: list[float], misses: int) -> str:
    if not times:
        return f"{name:<8} {kind:<10} {'-':>9} {'-':>9} {len(times):>4} ok {misses:>3} missed"
    median = statistics.median(times)
    return (f"{name:<8} {kind:<10} {median:>7.0f}ms {max(times):>7.0f}ms "
            f"{len(times):>4} ok {misses:>3} missed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20, help="draft keystrokes (ipytui)")
    parser.add_argument("--cells", type=int, default=8, help="cells run in A, per kernel")
    args = parser.parse_args(argv)
    install_handlers()
    wd = Workdir()
    results = {kind: run_kind(kind, wd, args.keys, args.cells) for kind in ("ipytui", "ipykernel")}
    print(f"{'what':<8} {'kernel':<10} {'median':>9} {'max':>9}")
    draft_times, draft_misses = results["ipytui"]["draft"]
    print(_row("draft", "ipytui", draft_times, draft_misses))
    medians = {}
    for kind in ("ipytui", "ipykernel"):
        times, misses = results[kind]["cell"]
        print(_row("cell", kind, times, misses))
        medians[kind] = statistics.median(times) if times else float("nan")
    print(f"cell ratio ipytui/ipykernel (medians): {medians['ipytui'] / medians['ipykernel']:.2f}")
    if draft_times:
        goal = "met" if statistics.median(draft_times) < 300 else "NOT met"
        print(f"draft goal < 300 ms (median): {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
