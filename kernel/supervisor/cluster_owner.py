"""The kernel's ipyparallel cluster as the supervisor sees it: which one later
workers join, what every client is told about its engines, and the processes
of a cluster the kernel started, stopped when the kernel stops.

The worker runs the cluster's client; the supervisor only keeps its word on
it. A cluster the worker started runs in process groups of their own
(ipyparallel starts each launcher in a new session), so a worker that dies
leaves them running for its successor, and the kernel's shutdown ends them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

log = logging.getLogger("ipytui.supervisor")

STOP_GRACE = 5.0  # seconds the cluster's processes get to end on SIGTERM before SIGKILL


class ClusterOwner:
    """The cluster facts from the worker's ``cluster`` events (see the module docstring)."""

    def __init__(self, spec: str | None = None) -> None:
        self.spec = spec  # what the next fresh worker joins: new:N at first, then the file
        self.state: dict[str, Any] = {}
        self.owned_pids: list[int] = []
        self.cluster_file = ""  # ipyparallel's record of a cluster the kernel started

    def worker_config(self) -> dict[str, Any]:
        """The ``cluster`` entry of a fresh worker's config."""
        return {"cluster": self.spec} if self.spec else {}

    def on_event(self, event: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
        """Take a worker's ``cluster`` event; returns the details to announce and
        whether to journal them (membership changes), or None when nothing changed."""
        details = {
            k: v for k, v in event.items() if k not in ("event", "owned_pids", "cluster_file")
        }
        if isinstance(event.get("error"), str):
            self.spec = None  # a cluster that cannot be had is not tried again by each worker
            return details, True
        pids = event.get("owned_pids")
        if isinstance(pids, list):
            self.owned_pids = [p for p in pids if isinstance(p, int) and p > 0]
            record = event.get("cluster_file")
            self.cluster_file = record if isinstance(record, str) else ""
        where = event.get("connection_file")
        if isinstance(where, str):
            self.spec = where or None  # later workers join the same cluster; "" left it
        if details == self.state:
            return None
        before, self.state = self.state, details
        return details, _membership(before) != _membership(details)

    def stop(self) -> None:
        """End the process groups of a cluster the kernel started (the kernel stops)."""
        # ipengine's nanny runs in a session of its own, a child of its engine
        table = _process_table()
        groups = sorted({table[pid][1] for pid in _descendants(self.owned_pids, table)})
        self.owned_pids = []
        if self.cluster_file.endswith(".json"):  # else `ipcluster list` shows it, stopped
            with contextlib.suppress(OSError):
                os.unlink(self.cluster_file)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
            deadline = time.monotonic() + STOP_GRACE
            while sig == signal.SIGTERM and time.monotonic() < deadline:
                groups = [g for g in groups if _any_member_running(g)]
                if not groups:
                    return
                time.sleep(0.05)
        if groups:
            log.warning("cluster processes %s needed SIGKILL", groups)


def _membership(details: dict[str, Any]) -> list[tuple[Any, bool]]:
    """Which engines exist and which are dead: the journal keeps these changes, not
    every busy/up flip."""
    engines = details.get("engines") if isinstance(details.get("engines"), list) else []
    return [(e.get("id"), e.get("state") == "dead") for e in engines if isinstance(e, dict)]


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live (not zombie) process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _descendants(roots: list[int], table: dict[int, tuple[int, int]]) -> set[int]:
    """The live ``roots`` and every live process below them."""
    found = {pid for pid in roots if pid in table}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def _any_member_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (``killpg(g, 0)`` also answers
    for a group of zombies)."""
    return any(group == pgid for _, group in _process_table().values())
