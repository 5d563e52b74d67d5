"""Culling: a kernel nobody has been attached to for a long time stops itself, keeping its work.

Orphans (the console that launched a kernel died, a UI was closed and the
kernel forgotten) would otherwise run for ever. After ``cull_after`` seconds
with no client and nothing running or queued, the worker writes a checkpoint
of its namespace (on its main thread, between cells, so it is consistent) and
the supervisor stops cleanly. The lock stays, marked ``ended: "culled"``, next
to the checkpoint: ``ipytui list`` says what happened and ``ipytui recover``
brings the work back.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.atomic import sweep_tmp
from ipytui.kernel.protocol.spill_files import remove_spills
from ipytui.kernel.supervisor.inflight import WorkerState
from ipytui.kernel.supervisor.lockfile import KernelLock, LockKeeper
from ipytui.kernel.supervisor.presence_service import PresenceService
from ipytui.kernel.supervisor.worker_link import WorkerLink

log = logging.getLogger("ipytui.supervisor")

DEFAULT_CULL_AFTER = 4 * 3600.0  # seconds without clients; the kernel flag and config override it
CHECKPOINT_WAIT = 30.0  # seconds the worker gets to write its checkpoint before we stop anyway


class Culling:
    """A Supervisor mixin: count the time alone, cull when it is due."""

    lock: KernelLock
    lock_keeper: LockKeeper
    link: WorkerLink
    worker: WorkerState
    presence: PresenceService
    checkpoint_path: Path
    running: bool
    crash_pending: Any

    def init_culling(self, cull_after: float) -> None:
        self.cull_after = max(0.0, cull_after)
        self.alone_since: float | None = time.monotonic()
        self.culled = False
        self.checkpointed: dict[str, Any] | None = None  # the worker's answer to "checkpoint"

    def check_idle(self) -> None:
        """Each loop turn: any client, cell or crash in progress resets the clock (and a
        worker still starting: a client has had no chance to attach yet)."""
        table = self.presence.table
        if table.peers or table.queue or self.crash_pending is not None or not self.worker.ready:
            self.alone_since = None
            return
        now = time.monotonic()
        if self.alone_since is None:
            self.alone_since = now
        if self.cull_after > 0 and now - self.alone_since >= self.cull_after:
            log.warning(
                "no client for %.0f s: writing a checkpoint and stopping (culled)",
                now - self.alone_since,
            )
            self._checkpoint_now()
            self.culled = True
            self.running = False

    def _checkpoint_now(self) -> None:
        """Ask the worker for a checkpoint of its namespace and wait for its answer (bounded)."""
        if not self.worker.ready:
            return
        self.checkpointed = None
        if not self.link.send("exec", [b"sup", json.dumps({"cmd": "checkpoint"}).encode()]):
            return
        deadline = time.monotonic() + CHECKPOINT_WAIT
        while self.checkpointed is None and time.monotonic() < deadline:
            self.link.read_up(timeout_ms=50)
        if not (self.checkpointed or {}).get("ok"):
            log.warning(
                "the worker wrote no checkpoint before the cull: %s",
                (self.checkpointed or {}).get("why", "no answer"),
            )

    def leave_lock(self) -> None:
        """At the end: a clean stop removes lock and checkpoint; a cull keeps both, marked."""
        self.lock_keeper.close()  # its last rewrite lands first, never after the removal
        remove_spills(self.checkpoint_path)  # the points are killed: their files are of no use
        if self.culled and self.checkpoint_path.exists():
            self.lock.ended, self.lock.clients, self.lock.activity = "culled", 0, "idle"
            self.lock.write()
            return
        self.lock.remove()
        self.checkpoint_path.unlink(missing_ok=True)
        sweep_tmp(self.checkpoint_path.parent, self.checkpoint_path.name)  # of killed points
