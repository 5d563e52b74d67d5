"""Completion over the corpus (`completion_corpus`), right answers next to latency.

Each kernel starts with a fresh, empty ``XDG_CACHE_HOME`` (jedi's and parso's
on-disk caches, ipytui's and ipykernel's alike), runs `SETUP`, and is asked
every case at once: the *first pass* is what a user pressing Tab right after
start gets. Then *steady* passes over the warm kernel. Each answer is scored
with `completion_corpus.hits`; a fast empty answer is a miss.

    python benchmarks/completion_bench.py    # per-case table for both kernels, one run
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from completion_corpus import CASES, SETUP, Case, hits

Add = Callable[[str, Any], None]
Ask = Callable[[str], tuple[float, dict[str, Any]]]


def fresh_cache_env(env: dict[str, str], root: Path, kind: str) -> dict[str, str]:
    """`env` with an XDG_CACHE_HOME no process has used yet (a cold jedi cache)."""
    n = 0
    while (root / f"cache-{kind}-{n}").exists():
        n += 1
    cache = root / f"cache-{kind}-{n}"
    cache.mkdir(mode=0o700, parents=True)
    return dict(env, XDG_CACHE_HOME=str(cache))


def run_pass(ask: Ask, add: Add, when: str) -> list[tuple[Case, float, bool]]:
    """Every case once; records latency per case, the pass's total, and the fraction right
    (of all cases, and of the inference cases)."""
    results = []
    for case in CASES:
        ms, reply = ask(case.code)
        ok = hits(case, reply)
        results.append((case, ms, ok))
        add(f"corpus_{when}", ms)
        if case.kind == "inference":
            add(f"corpus_{when}_inference", ms)
    inference = [ok for case, _, ok in results if case.kind == "inference"]
    add(f"corpus_{when}_hits", sum(ok for _, _, ok in results) / len(results))
    add(f"corpus_{when}_inference_hits", sum(inference) / len(inference))
    add(f"corpus_{when}_total", sum(ms for _, ms, _ in results))
    return results


def lean_ask(client: Any) -> Ask:
    """`ask` over the benchmark's lean client: (ms to the reply, reply content)."""

    def ask(code: str) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        t1, _, reply = client.wait_reply(client.complete(code), 60)
        return (t1 - t0) * 1e3, reply

    return ask


def _main() -> int:
    """Both kernels once, cold then warm, with a line per case (for looking at misses)."""
    import procs
    from kernel_bench import KernelRun

    procs.install_handlers()
    wd = procs.Workdir()
    table: dict[str, list[list[tuple[Case, float, bool]]]] = {}
    try:
        for kind in ("ipytui", "ipykernel"):
            run = KernelRun(kind, wd, env=fresh_cache_env(wd.env, wd.root, kind))
            try:
                run.start(lambda name, value: None)
                assert run.client.run(SETUP, 60)["status"] == "ok"
                ask = lean_ask(run.client)
                table[kind] = [run_pass(ask, lambda n, v: None, w) for w in ("first", "steady")]
            finally:
                run.stop(grace=2.0)
    finally:
        procs.kill_all()
    for i, case in enumerate(CASES):
        cells = [f"{'ok ' if r[i][2] else 'MISS'} {r[i][1]:7.1f}" for kind in table for r in table[kind]]
        print(f"{case.kind:9} {case.code.replace(chr(10), '; ')[:44]:44} " + " | ".join(cells))
    for kind, passes in table.items():
        for when, results in zip(("first", "steady"), passes, strict=True):
            right = sum(ok for _, _, ok in results)
            total = sum(ms for _, ms, _ in results)
            print(f"{kind:9} {when:6} {right}/{len(results)} right, {total:8.0f} ms total")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(_main())
