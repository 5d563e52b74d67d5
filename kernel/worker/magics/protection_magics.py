"""``%protection``, ``%undo`` and ``%timeline``: crash protection and time travel.

The restore points are fork snapshots the supervisor keeps (a chain; see
docs/protection.md). These magics ask the supervisor over the worker's pipe;
an accepted ``%undo`` ends this worker and the supervisor wakes the chosen
snapshot in its place, so the magic never returns in that case (unless the
point never wakes: then the undo's fallback returns, see worker/undo_fallback.py).
"""

from __future__ import annotations

import time
from typing import Any

from ipytui.kernel.protocol.sizes import format_size
from ipytui.kernel.worker.magics.args import split
from ipytui.kernel.worker.magics.registry import ArgumentError, UsageError, line_magic

LEVEL_WORDS = ("auto", "cell", "idle", "checkpoint", "off")


def _kernel(shell: Any, what: str) -> Any:
    context = shell.context
    if not hasattr(context, "ask_supervisor"):
        raise UsageError(f"{what} needs the ipytui kernel's supervisor")
    return context


@line_magic
def protection(shell: Any, line: str) -> None:
    """%protection [auto|cell|idle|checkpoint|off]

    Show or choose the crash-protection level. `cell` keeps a restore point
    after each state-changing cell (undo per cell); `idle` takes one once the
    kernel has been idle a moment (big back-to-back cells pay once);
    `checkpoint` keeps no live restore point, only a pickle checkpoint written
    at idle (no undo; unpicklable objects are lost in a crash); `off` keeps
    none; `auto` (the default) moves between cell, idle and checkpoint by what
    the cells cost and the budget, and says so each time.
    """
    context = _kernel(shell, "%protection")
    words = split(line)
    if len(words) > 1 or (words and words[0] not in LEVEL_WORDS):
        raise ArgumentError(f"choose one of {', '.join(LEVEL_WORDS)}")
    if not words:
        answer = context.ask_supervisor({"event": "timeline"})
        print(_describe(context.protection_info(), answer.get("timeline")))
        return
    print(context.set_protection(words[0]))


def _describe(info: dict[str, Any], chain: dict[str, Any] | None = None) -> str:
    lines = [f"Protection: {info['level']} (setting {info['setting']}): {info['reason']}."]
    last = info.get("last_cell")
    if last:
        lines.append(
            f"Last measured cell [{last['count']}]: {last['seconds'] * 1000:.1f} ms, "
            f"copied {format_size(last['copied'])} for its restore point."
        )
    lines.append(
        f"Budget: {format_size(info['budget'])} of kept restore points; a cell copying "
        f"over {format_size(info['copy_limit'])} moves auto to idle "
        f"({info['idle_seconds']:g} s)."
    )
    if chain:
        lines.append(_holding(chain))
    if info.get("worker_mapped"):
        lines.append(
            f"The worker maps up to {format_size(info['worker_mapped'])} of deleted spill "
            "files (a lazy restore): their disk is held until those arrays are freed."
        )
    return "\n".join(lines)


def _holding(chain: dict[str, Any]) -> str:
    """What the kept points cost, RAM and disk apart (a spilled point holds its big
    buffers on disk, not in RAM: worker/spill.py)."""
    return (
        f"The {len(chain['points'])} kept restore point(s) hold "
        f"{format_size(chain['held'])} of RAM (budget {format_size(chain['budget'])}) "
        f"and {format_size(chain.get('on_disk', 0))} on disk (spilled buffers)."
    )


class UndoFailed(UsageError):
    """An accepted undo whose restore point never became ready: nothing was undone."""


@line_magic
def undo(shell: Any, line: str) -> None:
    """%undo [N] | %undo --to C [--last L]

    Put the namespace back to what it was before the last N state-changing
    cells (default 1), from the restore points the kernel keeps (%timeline
    lists them). N counts from the state when this %undo reached the kernel:
    a peer's cell that finishes after that is never taken back (the undo is
    refused instead). `--to C` goes back to the state before cell C, taking
    back C and the state-changing cells after it up to L (default C); it is
    refused if a later cell changed the state (what F10 and the timeline
    screen send). The cells stay in the history. Every object comes back as it
    was, lambdas, closures, generators part-way through and open files included;
    a module the undone cells imported is gone (from sys.modules too).

    An undo cannot take back what a cell did outside the namespace: files
    written stay written (an open file comes back open, but its offset is
    shared with the undone state, so the next write goes after what the undone
    cell wrote), network calls stay made, GPU memory and other processes stay
    as they are, and threads do not come back. If the restore point does not
    wake up in time, the undo fails with UndoFailed and the namespace stays as
    it was.
    """
    answer = _kernel(shell, "%undo").undo(undo_event(split(line)))
    if answer.get("failed"):
        raise UndoFailed(answer.get("error") or "the restore point did not wake up")
    raise UsageError(answer.get("error") or "the undo did not happen")


def undo_event(words: list[str]) -> dict[str, Any]:
    """The supervisor's question for %undo's words (ArgumentError if they are wrong)."""
    if not words:
        return {"event": "undo", "steps": 1}
    if len(words) == 1 and words[0].isdigit() and int(words[0]) >= 1:
        return {"event": "undo", "steps": int(words[0])}
    options = dict(zip(words[::2], words[1::2], strict=False))
    if (
        len(words) % 2
        or "--to" not in options
        or set(options) - {"--to", "--last"}
        or not all(v.isdigit() and int(v) >= 1 for v in options.values())
    ):
        raise ArgumentError(
            "N must be a whole number of cells, 1 or more (or: --to C [--last L], cell numbers)"
        )
    first = int(options["--to"])
    last = int(options.get("--last", first))
    if last < first:
        raise ArgumentError(f"--last {last} is before --to {first}")
    return {"event": "undo", "to": first, "last": last}


@line_magic
def timeline(shell: Any, line: str) -> None:
    """%timeline

    The restore points kept (the cell each follows, who ran it, when, the names
    it changed as read from its source, the memory it holds), what %undo N goes back to, and which
    cells can no longer be undone and why.
    """
    if split(line):
        raise ArgumentError("%timeline takes no arguments")
    answer = _kernel(shell, "%timeline").ask_supervisor({"event": "timeline"})
    if "error" in answer:
        raise UsageError(answer["error"])
    print(format_timeline(answer["timeline"]))


def _unstepped(point: dict[str, Any], data: dict[str, Any]) -> str:
    """A row no %undo N reaches: the current state, or one past the depth (a point
    kept as the base of cells logged after it, or such a logged cell)."""
    if point.get("current", True):
        return "current"
    return "past" if point.get("logged") else "base"


def format_timeline(data: dict[str, Any]) -> str:
    """The timeline as text (newest last, as cells run)."""
    lines = [
        f"Restore points: {data['available']} undo step(s) available "
        f"(undo_depth {data['undo_depth']}), protection {data.get('level', '?')}; "
        f"they hold {format_size(data['held'])} of RAM of the "
        f"{format_size(data['budget'])} budget, and {format_size(data.get('on_disk', 0))} "
        "on disk."
    ]
    for point in data["points"]:
        when = time.strftime("%H:%M:%S", time.localtime(point["taken"]))
        step = f"%undo {point['undo_steps']}" if point["undo_steps"] else _unstepped(point, data)
        names = ", ".join(point["changed"]) or "-"
        lines.append(
            f"  {step:<8} state after cell [{point['count']}]  by {point['user'] or '?'}"
            f"  at {when}  changed: {names}  holds {format_size(point['held'])}"
            + (f"  ({point['spill']})" if point.get("spill") else "")
        )
    if not data["points"]:
        lines.append("  none kept")
    unprotected = data.get("unprotected") or []
    if unprotected:
        cells = ", ".join(f"[{c}]" for c in unprotected)
        lines.append(
            f"Cells {cells} changed the state after the newest restore point: "
            "an undo or a crash goes back before them."
        )
    for gone in data["gone"]:
        lines.append(f"Not undoable: {gone}")
    return "\n".join(lines)
