"""%time and %timeit, line and cell forms."""

from __future__ import annotations

import ast
import linecache
import os
import statistics
import time
import timeit
from dataclasses import dataclass
from types import CodeType
from typing import Any

from ipytui.kernel.protocol.syntax import transform_cell
from ipytui.kernel.worker.magics.args import int_option, parse_code_options
from ipytui.kernel.worker.magics.registry import ArgumentError, cell_magic, line_magic

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

_UNITS = (("s", 1.0), ("ms", 1e3), ("µs", 1e6), ("ns", 1e9))
_TIMEIT_OPTIONS = "n:r:p:qo"


def format_time(seconds: float, precision: int = 3) -> str:
    """A duration for people: ``1.23 ms``, ``45.6 µs``, ``2min 5s``."""
    if seconds >= 60:
        rest = round(seconds)
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            value, rest = divmod(rest, size)
            if value or parts:
                parts.append(f"{value}{unit}")
        return " ".join([*parts, f"{rest}s"])
    for index, (unit, scale) in enumerate(_UNITS):
        value = float(f"{seconds * scale:.{precision}g}")
        if value >= 1 or index == len(_UNITS) - 1:
            if value >= 1000 and index > 0:  # 999.96 µs rounds up to 1 ms
                unit, value = _UNITS[index - 1][0], value / 1000
            return f"{value:.{precision}g} {unit}"
    raise AssertionError("unreachable")


def _cpu_times() -> tuple[float, float]:
    if resource is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime, usage.ru_stime
    times = os.times()
    return times.user, times.system


def _compile(source: str, filename: str, first_line: int) -> tuple[CodeType | None, CodeType | None]:
    """Statements and a trailing expression, numbered from ``first_line`` as in the cell."""
    padded = "\n" * (first_line - 1) + source
    linecache.cache[filename] = (len(padded), None, padded.splitlines(True), filename)
    tree = ast.parse(padded, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return (compile(tree, filename, "exec") if tree.body else None), last


def _time_code(shell: Any, source: str, first_line: int) -> Any:
    block, last = _compile(source, "<timed code>", first_line)
    ns, local_ns = shell.user_ns, shell.local_ns
    wall, (user, system) = time.perf_counter(), _cpu_times()
    if block is not None:
        exec(block, ns, local_ns)
    value = eval(last, ns, local_ns) if last is not None else None
    wall = time.perf_counter() - wall
    user_end, system_end = _cpu_times()
    user, system = user_end - user, system_end - system
    print(
        f"CPU times: user {format_time(user)}, sys: {format_time(system)}, "
        f"total: {format_time(user + system)}\nWall time: {format_time(wall)}"
    )
    return value


@line_magic("time", expand_vars=False)
def time_line(shell: Any, line: str) -> Any:
    """%time STATEMENT

    Run a statement or expression once and print its CPU times (user, sys,
    total) and wall time. An expression's value is returned, so
    `x = %time f()` keeps it.
    """
    if not line.strip():
        raise ArgumentError("nothing to time")
    return _time_code(shell, transform_cell(line), 1)


@cell_magic("time", expand_vars=False)
def time_cell(shell: Any, line: str, cell: str) -> Any:
    """%%time

    Run the cell once and print its CPU and wall times. The value of a final
    expression is returned (and shown as the cell's result).
    """
    if line.strip():
        raise ArgumentError("%%time takes no arguments; put the code in the cell body")
    return _time_code(shell, transform_cell(cell), 2)


@dataclass
class TimeitResult:
    """What ``%timeit -o`` returns: per-loop timings of every run."""

    loops: int
    repeat: int
    all_runs: list[float]  # seconds per run of ``loops`` loops
    precision: int = 3

    @property
    def timings(self) -> list[float]:
        return [run / self.loops for run in self.all_runs]

    @property
    def best(self) -> float:
        return min(self.timings)

    @property
    def worst(self) -> float:
        return max(self.timings)

    @property
    def average(self) -> float:
        return statistics.fmean(self.timings)

    @property
    def stdev(self) -> float:
        return statistics.pstdev(self.timings)

    def __str__(self) -> str:
        fmt = self.precision
        runs = f"{self.repeat} run{'s' if self.repeat != 1 else ''}"
        loops = f"{self.loops:,} loop{'s' if self.loops != 1 else ''}"
        return (
            f"{format_time(self.average, fmt)} ± {format_time(self.stdev, fmt)} per loop "
            f"(mean ± std. dev. of {runs}, {loops} each; best {format_time(self.best, fmt)})"
        )

    def __repr__(self) -> str:
        return f"<TimeitResult: {self}>"

    def warning(self) -> str | None:
        """A hint when runs differ a lot, which usually means caching."""
        if self.best > 0 and self.worst > 4 * self.best and self.worst > 1e-6:
            return (
                f"The slowest run took {self.worst / self.best:.2f} times longer than the "
                "fastest; an intermediate result may be cached."
            )
        return None


def _timeit(shell: Any, options: dict[str, Any], stmt: str, setup: str) -> TimeitResult | None:
    number = int_option(options, "n", 0)
    repeat = int_option(options, "r", 7)
    precision = int_option(options, "p", 3)
    timer = timeit.Timer(stmt, setup or "pass", timer=time.perf_counter, globals=shell.namespace())
    if not number:
        number, _ = timer.autorange()  # the smallest 1, 2, 5, 10, ... loops taking >= 0.2 s
    result = TimeitResult(number, repeat, timer.repeat(repeat, number), precision)
    if not options.get("q"):
        if warning := result.warning():
            print(warning)
        print(result)
    return result if options.get("o") else None


@line_magic("timeit", expand_vars=False)
def timeit_line(shell: Any, line: str) -> TimeitResult | None:
    """%timeit [-n N] [-r R] [-p P] [-q] [-o] STATEMENT

    Time a statement over many loops: the mean ± standard deviation of R runs
    (default 7) of N loops each, and the best run. Without -n the number of
    loops is chosen so that one run takes at least 0.2 s.
      -n N  loops per run        -r R  runs (default 7)
      -p P  significant digits   -q    quiet
      -o    return a TimeitResult (best, average, stdev, all_runs, loops)
    """
    options, stmt = parse_code_options(line, _TIMEIT_OPTIONS)
    if not stmt:
        raise ArgumentError("nothing to time")
    return _timeit(shell, options, transform_cell(stmt), "pass")


@cell_magic("timeit", expand_vars=False)
def timeit_cell(shell: Any, line: str, cell: str) -> TimeitResult | None:
    """%%timeit [-n N] [-r R] [-p P] [-q] [-o] [SETUP]

    Time the cell body like %timeit; code after the options on the first line
    is setup, run before each run and not timed.
    """
    options, setup = parse_code_options(line, _TIMEIT_OPTIONS)
    if not cell.strip():
        raise ArgumentError("nothing to time: the cell body is empty")
    return _timeit(shell, options, transform_cell(cell), transform_cell(setup))
