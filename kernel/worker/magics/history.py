"""%history: the journal's history, through the kernel context."""

from __future__ import annotations

import re
from typing import Any

from ipytui.kernel.worker.magics.args import int_option, parse_args
from ipytui.kernel.worker.magics.registry import ArgumentError, line_magic

_RANGE = re.compile(r"^(?:(~?)(\d+)/)?(?:(\d+)(?:([-:])(\d+))?)?$")


def parse_range(spec: str) -> tuple[int, int, int | None]:
    """``4``, ``4-6`` (inclusive), ``4:6`` (6 excluded), ``3/1-5``, ``~1/`` -> (session, start, stop)."""
    m = _RANGE.match(spec)
    if m is None or not spec:
        raise ArgumentError(f"bad range {spec!r}")
    tilde, session, start, sep, end = m.groups()
    number = 0 if session is None else (-int(session) if tilde else int(session))
    if start is None:
        return number, 1, None
    if sep is None:
        return number, int(start), int(start) + 1
    return number, int(start), int(end) + 1 if sep == "-" else int(end)


def _queries(options: dict[str, Any], words: list[str]) -> list[dict[str, Any]]:
    if "g" in options:
        pattern = " ".join(words)
        return [{"hist_access_type": "search", "pattern": f"*{pattern}*" if pattern else "*",
                 "unique": bool(options.get("u"))}]
    if "l" in options:
        if len(words) > 1:
            raise ArgumentError("-l takes one number")
        n = int_option({"l": words[0]} if words else {}, "l", 10)
        return [{"hist_access_type": "tail", "n": n}]
    ranges = [parse_range(word) for word in words] or [(0, 1, None)]
    return [
        {"hist_access_type": "range", "session": s, "start": start, "stop": stop}
        for s, start, stop in ranges
    ]


def _show(entry: tuple[Any, ...], output: bool, numbers: bool, with_session: bool) -> None:
    session, number, item = entry
    code, result = item if output else (item, None)
    prefix = ""
    if numbers:
        prefix = f"{session}/{number}: " if with_session else f"{number:>4}: "
    lines = code.rstrip("\n").split("\n")
    print(prefix + ("\n" + " " * len(prefix)).join(lines))
    if output and result:
        print(result)


@line_magic
def history(shell: Any, line: str) -> None:
    """%history [-n] [-o] [-g [PATTERN] [-u]] [-l [N]] [RANGE ...]

    Print input history from the journal (shared by all kernels). By default
    the current session. RANGE: `4`, `4-6` (inclusive), `4:6` (6 excluded),
    `3/1-5` (session 3), `~1/` (the whole previous session).
      -n  show line numbers (`session/line` for searches and tails)
      -o  also show each cell's text output
      -g  search every session for PATTERN (a glob: * and ?), anywhere in the input
      -u  with -g: each distinct input once
      -l  the last N inputs of every session (default 10)
    """
    options, words = parse_args(line, "noglu")
    output = bool(options.get("o"))
    across_sessions = "g" in options or "l" in options
    numbers = bool(options.get("n")) or "g" in options
    for query in _queries(options, words):
        entries = shell.context.history(output=output, raw=True, **query)
        for entry in entries:
            _show(entry, output, numbers, across_sessions)
