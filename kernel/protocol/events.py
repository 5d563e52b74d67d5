"""Kernel events every client is told the same way: crashes, restarts, restores,
undos, interrupts, recoveries, protection-level changes and the state of the
ipyparallel cluster the kernel uses.

The supervisor publishes each on IOPub as an ``ipytui_event`` message with an
empty parent header and records it in the journal; UIs draw their status,
banners and stream notes from these events (live, or replayed from the
journal for a late joiner), never from counters of their own. Jupyter
clients ignore the type: jupyter console skips IOPub types it does not know,
and nbclient and JupyterLab only look at messages parented to their own
requests.

Content: ``event`` (one of ``KINDS``), ``time`` (epoch seconds), ``by``
(``{"username", "session"}`` of the client that asked, or null), ``status``
(the kernel's status facts, as kernel_info's ``ipytui`` key) and per kind:
``report`` and ``cell_msg_id`` (crash), ``method`` and ``after_cell``
(restart, restore, recovered, undo), ``undone`` (the cells an undo took back)
and ``cell_msg_id`` (the ``%undo`` cell, undo), ``level`` and ``reason``
(protection: the crash-protection level the kernel moved to, and why);
``engines`` (``[{"id", "state"}]``, state up, busy or dead), ``owned`` (the
kernel started the cluster), ``iopub`` (the Hub's IOPub: ``url``, ``key``,
``signature_scheme``, ``curve_serverkey``, for a UI's engine pane),
``connection_file`` and ``error`` (cluster). Peers of a kernel may run code
in it, so the cluster's key in ``iopub`` tells them nothing they could not read;
``timeline`` (timeline: ``%timeline``'s data, sent whenever the kept restore
points or the cells they cover change, while an ipytui UI is attached; a
state, not history, so it is not journaled: a late joiner reads it from
``usage_reply``'s ``ipytui.timeline``).
"""

from __future__ import annotations

from typing import Any

EVENT_MSG_TYPE = "ipytui_event"
KINDS = (
    "crash",
    "restart",
    "restore",
    "undo",
    "interrupt",
    "recovered",
    "protection",
    "cluster",
    "timeline",
)
ENGINE_STATES = ("up", "busy", "dead")

# jupyter_client's Session falls back to this when $USER is unset: it names nobody.
_DEFAULT_USERNAMES = {"", "username"}
ANONYMOUS = "a Jupyter client"


def client_name(username: Any) -> str:
    """A person's name for a request's ``username``, or "a Jupyter client"."""
    if not isinstance(username, str) or username.strip() in _DEFAULT_USERNAMES:
        return ANONYMOUS
    return username.strip()


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 name``, ``2 names``: the count with the right form of the word."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _state_after(event: dict[str, Any]) -> str:
    method, after = event.get("method"), event.get("after_cell")
    if method == "snapshot":
        return f"the state after In [{after}] from a snapshot" if after else "the latest snapshot"
    if method == "checkpoint":
        return "the state of the last checkpoint"
    return "an empty namespace"


def event_text(event: dict[str, Any]) -> str:
    """One line saying what happened and who did it, for a stream or a log."""
    kind = event.get("event")
    by = event.get("by")
    who = client_name(by.get("username")) if isinstance(by, dict) else "the kernel"
    if kind == "restart":
        return f"Kernel restarted by {who}: {_state_after(event)} for every client."
    if kind == "restore":
        return f"Kernel restored by {who}: back at {_state_after(event)}."
    if kind == "undo":
        undone = event.get("undone") if isinstance(event.get("undone"), list) else []
        cells = ", ".join(f"In [{c}]" for c in undone) or "no cell"
        if event.get("method") == "kept":  # the point did not wake: the fallback serves
            why = event.get("why") if isinstance(event.get("why"), str) else ""
            return f"Undo by {who} failed ({why or 'the restore point did not wake'}): nothing was undone."
        if event.get("method") == "newest":  # nor the fallback: the newest kept point serves
            why = event.get("why") if isinstance(event.get("why"), str) else ""
            after = event.get("after_cell")
            lost = f"; {cells} lost" if undone else ""
            return f"Undo by {who} failed ({why}): back at the state after In [{after}]{lost}."
        if event.get("method") != "snapshot":
            return f"Undo by {who} failed: the restore point died; the kernel starts empty."
        return f"Undo by {who}: back at {_state_after(event)}; {cells} undone."
    if kind == "interrupt":
        return f"Interrupt sent by {who}."
    if kind == "timeline":
        data = event.get("timeline") if isinstance(event.get("timeline"), dict) else {}
        return f"Restore points: {plural(int(data.get('available') or 0), 'undo step')} available."
    if kind == "protection":
        reason = event.get("reason") if isinstance(event.get("reason"), str) else ""
        during = f" (in a cell run by {who})" if isinstance(by, dict) else ""
        return f"Crash protection is now {event.get('level')}{during}" + (
            f": {reason}" if reason else "."
        )
    if kind == "cluster":
        return cluster_text(event)
    if kind == "recovered":
        names = event.get("names") if isinstance(event.get("names"), list) else []
        return (
            f"Kernel recovered from {_state_after(event)}: {plural(len(names), 'name')} restored."
        )
    if kind == "crash":
        report = event.get("report") if isinstance(event.get("report"), dict) else {}
        cause = report.get("cause") or "unknown cause"
        if not isinstance(by, dict):
            return f"Kernel crashed ({cause}) while no cell ran."
        return f"Kernel crashed ({cause}) in a cell run by {who}."
    return f"Kernel event {kind!r}."


def cluster_text(event: dict[str, Any]) -> str:
    """``Cluster (started by the kernel): engines 0 up, 1 busy.`` or the error."""
    if isinstance(event.get("error"), str) and event["error"]:
        return f"Cluster: {event['error']}"
    engines = [e for e in event.get("engines") or [] if isinstance(e, dict)]
    if not event.get("connection_file"):
        return "Cluster: none in use."
    owner = "started by the kernel" if event.get("owned") else "connected"
    listed = ", ".join(f"{e.get('id')} {e.get('state')}" for e in engines) or "none yet"
    return f"Cluster ({owner}): engines {listed}."
