"""What the kernel's disk writes are doing, and telling the clients when that changes.

Three features write to the data directory: the journal (history, replay),
checkpoints (recovery after total loss) and the lock file (``ipytui list``).
When the disk refuses a write (full, I/O error) the feature is *paused*: the
kernel keeps executing without it and tries again later. Every client is told
once on IOPub when a feature pauses and once when it resumes, as a ``stream``
on stderr (any Jupyter client shows it) and as an ``ipytui_status`` message
(the ipytui UI shows it in its status pane); ``kernel_info``'s ``ipytui`` key
carries the current state for clients that join later.

The journal fails on its own thread, so changes are queued under a lock and
published from the supervisor's loop (``flush``).

Checkpoints are written by restore points in the background, so their outcomes
can arrive out of order: an older point's write may fail on a full disk after
a newer point's write has succeeded. An outcome carries the cell count of the
state it wrote (``seq``); one older than the newest outcome heard says nothing
about the disk now and is ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ipytui.kernel.protocol.atomic import disk_reason

log = logging.getLogger("ipytui.supervisor")

# The name a user reads in the notice, by feature.
FEATURES = {"journal": "journal", "checkpoint": "checkpoints", "lock": "lock file"}


class DiskHealth:
    """Paused features and their reasons; notices waiting for the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paused: dict[str, str] = {}  # feature -> reason
        self._changes: list[tuple[str, str | None]] = []  # (feature, reason or None: resumed)
        self._newest: dict[str, int] = {}  # feature -> seq of the newest outcome heard

    def _stale(self, feature: str, seq: int | None) -> bool:
        """Whether an outcome of ``seq`` is older than one already heard (lock held)."""
        if seq is None:
            return False
        if seq < self._newest.get(feature, -1):
            return True
        self._newest[feature] = seq
        return False

    def forget_order(self, feature: str) -> None:
        """The counts start again (a restart without restore): no outcome is stale."""
        with self._lock:
            self._newest.pop(feature, None)

    def failed(self, feature: str, exc: BaseException | str, seq: int | None = None) -> None:
        """A write of ``feature`` failed; noted once until it succeeds again."""
        reason = exc if isinstance(exc, str) else disk_reason(exc)
        with self._lock:
            if self._stale(feature, seq):
                log.info(
                    "%s: a late failure of an older write ignored: %s", FEATURES[feature], reason
                )
                return
            if self.paused.get(feature) == reason:
                return
            self.paused[feature] = reason
            self._changes.append((feature, reason))
        log.warning("%s paused: %s", FEATURES[feature], reason)

    def ok(self, feature: str, seq: int | None = None) -> None:
        """A write of ``feature`` succeeded; a paused one resumes."""
        if seq is None and feature not in self.paused:  # unlocked peek: the common case
            return
        with self._lock:
            if self._stale(feature, seq) or self.paused.pop(feature, None) is None:
                return
            self._changes.append((feature, None))
        log.warning("%s resumed", FEATURES[feature])

    def flush(self, publish: Callable[..., None]) -> None:
        """Publish what changed since the last call (from the supervisor's loop)."""
        if not self._changes:
            return
        with self._lock:
            changes, self._changes = self._changes, []
            paused = dict(self.paused)
        for feature, reason in changes:
            text = notice_text(feature, reason)
            publish("iopub", "stream", {"name": "stderr", "text": f"[ipytui] {text}\n"})
            publish("iopub", "ipytui_status", {"notice": text, "disk": paused})

    def state(self) -> dict[str, Any]:
        """For kernel_info: paused feature -> reason."""
        with self._lock:
            return dict(self.paused)


def notice_text(feature: str, reason: str | None) -> str:
    """'checkpoints paused: no space left on the device' or 'checkpoints resumed'."""
    name = FEATURES.get(feature, feature)
    if reason is None:
        return f"{name} resumed"
    return f"{name} paused: {reason}; the kernel carries on and tries again later"
