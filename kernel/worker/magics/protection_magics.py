"""``%protection``, ``%undo`` and ``%timeline``: crash protection and time travel.

The restore points are fork snapshots the supervisor keeps (a chain; see
docs/protection.md). These magics ask the supervisor over the worker's pipe;
an accepted ``%undo`` ends this worker and the supervisor wakes the chosen
snapshot in its place, so the magic never returns in that case.
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
        lines.append(f"Last measured cell [{last['count']}]: {last['seconds'] * 1000:.1f} ms, "
                     f"copied {format_size(last['copied'])} for its restore point.")
    lines.append(f"Budget: {format_size(info['budget'])} of kept restore points; a cell copying "
                 f"over {format_size(info['copy_limit'])} moves auto to idle "
                 f"({info['idle_seconds']:g} s).")
    if chain:
        lines.append(_holding(chain))
    if info.get("worker_mapped"):
        lines.append(f"The worker maps up to {format_size(info['worker_mapped'])} of deleted spill "
                     "files (a lazy restore): their disk is held until those arrays are freed.")
    return "\n".join(lines)


def _holding(chain: dict[str, Any]) -> str:
    """What the kept points cost, RAM and disk apart (a spilled point holds its big
    buffers on disk, not in RAM: worker/spill.py)."""
    return (f"The {len(chain['points'])} kept restore point(s) hold "
            f"{format_size(chain['held'])} of RAM (budget {format_size(chain['budget'])}) "
            f"and {format_size(chain.get('on_disk', 0))} on disk (spilled buffers).")


@line_magic
def undo(shell: Any, line: str) -> None:
    """%undo [N]

    Put the namespace back to what it was before the last N state-changing
    cells (default 1), from the restore points the kernel keeps (%timeline
    lists them). The cells stay in the history. Every object comes back as it
    was, lambdas, closures, generators part-way through and open files included;
    a module the undone cells imported is gone (from sys.modules too).

    An undo cannot take back what a cell did outside the namespace: files
    written stay written (an open file comes back open, but its offset is
    shared with the undone state, so the next write goes after what the undone
    cell wrote), network calls stay made, GPU memory and other processes stay
    as they are, and threads do not come back.
    """
    words = split(line)
    if len(words) > 1 or (words and not words[0].isdigit()) or (words and int(words[0]) < 1):
        raise ArgumentError("N must be a whole number of cells, 1 or more")
    steps = int(words[0]) if words else 1
    answer = _kernel(shell, "%undo").ask_supervisor({"event": "undo", "steps": steps})
    raise UsageError(answer.get("error") or "the undo did not happen")


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


def format_timeline(data: dict[str, Any]) -> str:
    """The timeline as text (newest last, as cells run)."""
    lines = [f"Restore points: {data['available']} undo step(s) available "
             f"(undo_depth {data['undo_depth']}), protection {data.get('level', '?')}; "
             f"they hold {format_size(data['held'])} of RAM of the "
             f"{format_size(data['budget'])} budget, and {format_size(data.get('on_disk', 0))} "
             "on disk."]
    for point in data["points"]:
        when = time.strftime("%H:%M:%S", time.localtime(point["taken"]))
        step = f"%undo {point['undo_steps']}" if point["undo_steps"] else "current"
        names = ", ".join(point["changed"]) or "-"
        lines.append(f"  {step:<8} state after cell [{point['count']}]  by {point['user'] or '?'}"
                     f"  at {when}  changed: {names}  holds {format_size(point['held'])}"
                     + (f"  ({point['spill']})" if point.get("spill") else ""))
    if not data["points"]:
        lines.append("  none kept")
    unprotected = data.get("unprotected") or []
    if unprotected:
        cells = ", ".join(f"[{c}]" for c in unprotected)
        lines.append(f"Cells {cells} changed the state after the newest restore point: "
                     "an undo or a crash goes back before them.")
    for gone in data["gone"]:
        lines.append(f"Not undoable: {gone}")
    return "\n".join(lines)
