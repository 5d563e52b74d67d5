"""The correctness table of the undo benchmark: each kind of change, taken back.

Each case runs on a fresh kernel of each kind: set up, run the changing
cell, undo it, then print ``repr`` of the check expression and compare it
with the value it had before the change. Plain ipykernel (no undo) runs the
same set-up and change without an undo, which shows that the change really
changes the checked value (a case that could not fail would prove nothing).

A verdict is ``right``, ``wrong`` (what was seen instead), or ``refused``
(the undo answered an error: its message). Anything the kernel printed on
stderr during the set-up, change or undo (Kishu reports the objects it
cannot pickle there) is kept as a note.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from undo_kernels import UndoKernel

CASE_TIMEOUT = 60.0  # seconds for one cell of a case (tiny objects: a hang is a result)


@dataclass(frozen=True)
class Case:
    """A kind of change: set-up cell, changing cell, check expression, its value before."""

    name: str
    setup: str
    change: str
    check: str
    before: str


_FILE = (
    "import os, tempfile; p = os.path.join(tempfile.mkdtemp(), 't.txt')\n"
    "with open(p, 'w') as w: w.write('line 1\\nline 2\\n')\nfh = open(p); first = fh.readline()"
)
_CLOSURE = textwrap.dedent("""\
    def make_counter():
        n = 0
        def bump():
            nonlocal n
            n += 1
            return n
        return bump
    counter = make_counter(); counter()
""")

CASES = (
    Case("rebinding", "a = 1", "a = 2", "a", "1"),
    Case("del", "b = 'kept'", "del b", "b", "'kept'"),
    Case("list in place", "lst = [1, 2]", "lst.append(3)", "lst", "[1, 2]"),
    Case("dict in place", "d = {'a': 1}", "d['b'] = 2", "d", "{'a': 1}"),
    Case(
        "numpy array in place",
        "import numpy as np; arr = np.arange(5)",
        "arr += 10",
        "arr.tolist()",
        "[0, 1, 2, 3, 4]",
    ),
    Case(
        "DataFrame: drop a column",
        "import pandas as pd; df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})",
        "df.drop(columns='b', inplace=True)",
        "df.to_dict('list')",
        "{'a': [1, 2], 'b': [3, 4]}",
    ),
    Case("lambda", "f = lambda v: v + 1", "f = lambda v: v * 100", "f(1)", "2"),
    Case(
        "generator mid-iteration",
        "gen = (i for i in range(10)); next(gen)",
        "next(gen)",
        "next(gen)",
        "1",
    ),
    Case("closure", _CLOSURE, "counter()", "counter()", "2"),
    Case(
        "open file (closed by the cell)",
        _FILE,
        "fh.close()",
        "(fh.closed, fh.readline())",
        "(False, 'line 2\\n')",
    ),
    Case("module imported by the cell", "m = 1", "import json as jj", "'jj' in globals()", "False"),
)


def run_case(kind: str, case: Case) -> dict[str, str]:
    """One case on a fresh kernel of `kind`: verdict, what was seen, notes."""
    kernel = UndoKernel(kind)
    notes: list[str] = []
    try:
        kernel.start()
        for step, code in (("set-up", case.setup), ("change", case.change)):
            out = kernel.cell(code, timeout=CASE_TIMEOUT)
            if not out.ok:
                return {"verdict": "error", "seen": f"{step} failed: {out.error()}", "notes": ""}
            notes += _notes(step, out.stderr)
        undo = kernel.undo(CASE_TIMEOUT)
        if undo is not None:
            notes += _notes("undo", undo.stderr) + _notes("undo said", undo.shown)
            if undo.error():
                return {"verdict": "refused", "seen": undo.error(), "notes": "; ".join(notes)}
        seen = kernel.cell(f"print(repr({case.check}))", timeout=CASE_TIMEOUT)
        got = seen.stdout.strip() if seen.ok else seen.error()
        if undo is None:  # no undo: did the change change the checked value?
            verdict = "changed" if got != case.before else "unchanged"
        else:
            verdict = "right" if got == case.before else "wrong"
        return {"verdict": verdict, "seen": got, "notes": "; ".join(notes)}
    except Exception as exc:  # noqa: BLE001 - a kernel that dies is a result, not a crash
        return {"verdict": "error", "seen": f"{type(exc).__name__}: {exc}", "notes": ""}
    finally:
        kernel.stop()


def _notes(step: str, stderr: str) -> list[str]:
    """The last line of what a step printed on stderr (Kishu's warnings and errors)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return [f"{step}: {lines[-1][:160]}"] if lines else []


def run_cases(kinds: tuple[str, ...], names: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    """The named cases on every kind: {case name: {kind: result}}."""
    return {c.name: {kind: run_case(kind, c) for kind in kinds} for c in CASES if c.name in names}


def render_cases(results: dict[str, dict[str, dict[str, str]]], kinds: tuple[str, ...]) -> str:
    """The table: one row per case, a verdict column per kind, then the notes."""
    heads = {
        "ipykernel": "ipykernel (no undo)",
        "kishu": "Kishu (`kishu undo`'s request)",
        "kishu-cell": "Kishu (checkout in a cell)",
        "ipytui": "ipytui",
    }
    lines = [
        "| kind of change | expected after undo | " + " | ".join(heads[k] for k in kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    notes = []
    chosen = [c for c in CASES if c.name in results]
    for case in chosen:
        cells = []
        for kind in kinds:
            res = results[case.name][kind]
            text = res["verdict"]
            if res["verdict"] not in ("right", "changed"):
                text += f": `{res['seen']}`"
            cells.append(text)
            if res["notes"] and res["verdict"] not in ("right", "changed"):
                notes.append(f"- {case.name}, {heads[kind]}: {res['notes']}")
        lines.append(f"| {case.name} | `{case.before}` | " + " | ".join(cells) + " |")
    counts = [sum(results[c.name][k]["verdict"] == "right" for c in chosen) for k in kinds]
    lines.append(
        "| **right** | | "
        + " | ".join(
            "-" if k == "ipykernel" else f"{n}/{len(chosen)}"
            for k, n in zip(kinds, counts, strict=True)
        )
        + " |"
    )
    if notes:
        lines += ["", "where not right, the last line on stderr (or shown by the undo):", *notes]
    return "\n".join(lines)
