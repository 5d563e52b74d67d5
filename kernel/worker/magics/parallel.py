"""%cluster, %px, %%px, %autopx, %pxresult, %pxconfig: ipyparallel from the kernel.

Built on ``ipyparallel.Client`` and ``DirectView.execute(block=False)``; each
engine's output streams into the cell as it arrives, labelled by engine, so
every client of the shared stream sees it.
"""

from __future__ import annotations

import re
from typing import Any

from ipytui.kernel.worker import cluster_watch
from ipytui.kernel.worker.cluster import LINK, ClusterError, EngineFailure
from ipytui.kernel.worker.magics.args import parse_args, split
from ipytui.kernel.worker.magics.registry import (
    ArgumentError,
    UsageError,
    add_cell_rewriter,
    cell_magic,
    line_magic,
    remove_cell_rewriter,
)

_PX_OPTIONS = ("targets=", "block", "noblock", "verbose")


class RemoteError(UsageError):
    """Code failed on one or more engines; their tracebacks were shown above."""


def _targets(text: str) -> Any:
    """``all``, ``3``, ``0,2``, ``1:3`` (a slice of the engine ids)."""
    text = text.strip()
    if text in ("", "all"):
        return "all"
    try:
        if ":" in text:
            start, _, stop = text.partition(":")
            return slice(int(start) if start else None, int(stop) if stop else None)
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ArgumentError(f"bad --targets {text!r}: use all, N, N,M or N:M") from None
    return values[0] if len(values) == 1 else values


def _run(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        cluster_watch.ensure()  # after a restore from a snapshot: a new Client, a new watcher
        return action(*args, **kwargs)
    except EngineFailure as exc:
        raise RemoteError(str(exc)) from None
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


_LEADING = re.compile(r"\s*--(targets)(?:=|\s+)(\S+)|\s*--(block|noblock|verbose)(?=\s|$)")


def _leading_options(line: str) -> tuple[dict[str, Any], str]:
    """``--targets T --noblock`` before the code; the code itself is kept verbatim."""
    options: dict[str, Any] = {}
    while m := _LEADING.match(line):
        if m.group(1):
            options["targets"] = m.group(2)
        else:
            options[m.group(3)] = True
        line = line[m.end() :]
    if line.lstrip().startswith("--"):
        raise ArgumentError(f"unknown option {line.split()[0]!r}")
    return options, line


def _px_options(options: dict[str, Any]) -> tuple[Any, bool | None]:
    targets = _targets(str(options["targets"])) if "targets" in options else None
    block = True if "block" in options else False if "noblock" in options else None
    return targets, block


@line_magic
def cluster(shell: Any, line: str) -> None:
    """%cluster [start N | connect FILE|PROFILE | stop]

    Without arguments: the engines of the cluster this kernel uses and their state.
    ``start N`` starts a local cluster of N engines that ends with ``stop`` (or the
    kernel); ``connect`` joins a running one by its ``ipcontroller-client.json``
    or its profile name; ``stop`` leaves it (and stops one this kernel started).
    """
    words = split(line)
    command = words[0] if words else ""
    LINK.wait_joined()  # ``--cluster``'s join at start-up ends first
    if command == "":
        print(_run(LINK.describe))
    elif command == "start":
        try:
            n = int(words[1]) if len(words) > 1 else 2
        except ValueError:
            raise ArgumentError(f"start takes a number of engines, not {words[1]!r}") from None
        if not 1 <= n <= 256:
            raise ArgumentError("start takes between 1 and 256 engines")
        print(_run(LINK.start, n))
        cluster_watch.watch()
    elif command == "connect":
        print(_run(LINK.connect, words[1] if len(words) > 1 else "default"))
        cluster_watch.watch()
    elif command == "stop":
        was = LINK.connected
        cluster_watch.unwatch()
        LINK.close()
        print("left the cluster" if was else "no cluster was in use")
    else:
        raise ArgumentError(f"unknown %cluster command {command!r}")


@line_magic(expand_vars=False)
def px(shell: Any, line: str) -> None:
    """%px [--targets T] [--block|--noblock] CODE

    Run one line of code on the engines (all by default); their output arrives
    as it is printed, labelled ``[stdout:ID]``.
    """
    options, code = _leading_options(line)
    if not code.strip():
        raise ArgumentError("%px needs code to run")
    targets, block = _px_options(options)
    _run(LINK.execute, code, targets, block)


@cell_magic("px", expand_vars=False)
def px_cell(shell: Any, line: str, cell: str) -> None:
    """%%px [--targets T] [--block|--noblock]

    Run the cell on the engines; their output arrives as it is printed.
    """
    options, rest = parse_args(line, "", _PX_OPTIONS)
    if rest:
        raise ArgumentError(f"unexpected arguments {' '.join(rest)!r}")
    targets, block = _px_options(options)
    _run(LINK.execute, cell, targets, block)


def _autopx_rewrite(code: str) -> str:
    """While %autopx is on, every cell runs on the engines (but %autopx itself)."""
    stripped = code.strip()
    if not stripped or stripped.startswith(("%autopx", "%cluster", "%pxconfig", "%pxresult")):
        return code
    return "%%px\n" + code


@line_magic
def autopx(shell: Any, line: str) -> None:
    """%autopx

    Toggle: while on, every cell runs on the engines as with %%px.
    """
    if LINK.autopx:
        LINK.autopx = False
        remove_cell_rewriter(_autopx_rewrite)
        print("%autopx disabled")
        return
    _run(LINK.require)
    LINK.autopx = True
    add_cell_rewriter(_autopx_rewrite)
    print("%autopx enabled: cells run on the engines until %autopx again")


@line_magic
def pxresult(shell: Any, line: str) -> None:
    """%pxresult

    Wait for the last %px task and show its output and results.
    """
    _run(LINK.require)  # in a restored snapshot the last task belonged to the dead worker
    if LINK.last is None:
        raise UsageError("no %px task has run yet")
    _run(LINK.follow, LINK.last)


@line_magic
def pxconfig(shell: Any, line: str) -> None:
    """%pxconfig [--targets T] [--block|--noblock] [--verbose]

    Set which engines %px reaches and whether it waits; without options, show them.
    """
    options, rest = parse_args(line, "", _PX_OPTIONS)
    if rest:
        raise ArgumentError(f"unexpected arguments {' '.join(rest)!r}")
    targets, block = _px_options(options)
    engines = LINK.engines
    if targets is not None:
        engines.targets = targets
    if block is not None:
        engines.block = block
    if "verbose" in options:
        engines.verbose = True
    print(f"targets: {engines.targets}, {'blocking' if engines.block else 'non-blocking'}")
