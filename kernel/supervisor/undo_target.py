"""Which restore point an ``%undo`` goes back to, and when it must be refused.

An undo names what it takes back as the asker saw it, so that a peer's cell
that finished in between is never taken back unseen:

- ``%undo --to C --last L`` (what the TUI's F10 and timeline send, resolved
  when the user confirms): go back to the state before cell ``C``, taking
  back the state-changing cells ``C`` .. ``L``;
- ``%undo N`` (typed by hand, any client): the N-th restore point back from
  the state the kernel held when the request *arrived* (``seen``), its
  sender's own cells queued before it included (``own``: they were sent
  first, so they were meant), and ``L`` is that state.

Refused, with the reason, when ``C`` is no longer part of the state (undone
already, or it changed nothing), when no live point sits right before ``C``
(going further back would take back a cell not asked for), or when a
state-changing cell newer than ``L`` exists (it finished after the undo was
chosen: the asker never saw it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipytui.kernel.supervisor.restore_points import Logged, RestoreChain, RestorePoint


@dataclass(frozen=True)
class UndoRequest:
    """What one ``%undo`` asked for (``first`` 0: count ``steps`` back from ``seen``)."""

    steps: int = 1
    first: int = 0  # the first cell to take back (--to)
    last: int = 0  # the newest state-changing cell the asker agreed to take back (--last)
    seen: int = 0  # the state (last state-changing cell) when the request reached the kernel
    own: tuple[int, ...] = ()  # state-changing cells since, that its sender sent before it


@dataclass(frozen=True)
class UndoChoice:
    """An accepted undo: the point to wake, the logged cells it replays, the cell whose
    state that brings back, and the cells it takes back."""

    target: RestorePoint
    undone: list[int]
    replay: tuple[Logged, ...] = ()
    state: int = 0


def choose(ask: UndoRequest, chain: RestoreChain, changed: list[int]) -> UndoChoice | str:
    """The point ``ask`` goes back to, or why it is refused.

    ``changed``: the state-changing cells of the current state, oldest first.
    """
    seen = max(ask.seen, *ask.own) if ask.own else ask.seen
    first, last = ask.first, ask.last or seen
    if not first:
        targets = chain.undo_targets(seen)
        why = _too_far(ask.steps, len(targets), chain)
        if why:
            return why
        after = targets[-ask.steps].count
        first = next((c for c in changed if c > after), 0)
        if not first:  # the cells the asker saw are already undone (another undo)
            return "nothing to undo: the cells you saw are no longer part of the state"
    if first not in changed:
        return (
            f"cell [{first}] is not part of the current state (an undo already took it "
            "back, or it changed nothing): nothing was undone"
        )
    state = next((t for t in reversed(chain.states()) if t.count < first), None)
    if state is None:
        return (
            f"no restore point before cell [{first}] is kept (undo_depth "
            f"{chain.undo_depth}); %timeline says which cells can be undone"
        )
    skipped = [c for c in changed if state.count < c < first]
    if skipped:
        return (
            f"the restore point right before cell [{first}] is not kept; the nearest one "
            f"would also take back {_cells(skipped)}: nothing was undone (%timeline)"
        )
    undone = [c for c in changed if c > state.count]
    unseen = [c for c in undone if c > last and c not in ask.own]
    if unseen:
        who = _authors(unseen, chain)
        return (
            f"{_cells(unseen)}{who} changed the state after this undo was chosen; going "
            f"back to before cell [{first}] would take {'them' if len(unseen) > 1 else 'it'} "
            "back too. Nothing was undone: look at %timeline and undo again if you mean it"
        )
    return UndoChoice(state.point, undone, state.replay, state.count)


def _too_far(steps: int, available: int, chain: RestoreChain) -> str:
    if not available:
        return (
            "nothing to undo: no restore point older than the current state is kept "
            f"(undo_depth {chain.undo_depth}); %timeline says why"
        )
    if steps > available:
        return (
            f"cannot undo {steps} cells: only {available} restore point(s) before the "
            f"current state are kept (undo_depth {chain.undo_depth}); %timeline lists them"
        )
    return ""


def _cells(counts: list[int]) -> str:
    return ("cell " if len(counts) == 1 else "cells ") + ", ".join(f"[{c}]" for c in counts)


def _authors(counts: list[int], chain: RestoreChain) -> str:
    """ " (by bob)" from the points taken after those cells, when they are kept."""
    users = sorted(
        {p.user for p in chain.points if p.count in counts and p.user}
        | {e.user for p in chain.points for e in p.replay if e.count in counts and e.user}
    )
    return f" (by {', '.join(users)})" if users else ""
