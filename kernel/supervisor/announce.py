"""Telling every client about a shared event (see ``protocol/events.py``).

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor`: one method
publishes the event on IOPub, unparented, and queues it for the journal, so
a late joiner's replay holds the same events the early clients saw live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ipytui.kernel.protocol.events import EVENT_MSG_TYPE, event_text
from ipytui.kernel.protocol.wire import Message

log = logging.getLogger("ipytui.supervisor")


class Announcer:
    """``announce(kind, by=request, **details)`` for the supervisor."""

    recorder: Any
    publish: Callable[..., None]
    status_info: Callable[[], dict[str, Any]]

    def announce(self, kind: str, by: Message | None = None, *, journal: bool = True,
                 **details: Any) -> dict[str, Any]:
        """Publish and journal one event; returns its content. ``journal=False``: a
        state, not history (the timeline, an engine busy), told live only, not kept
        for replay."""
        header = by.header if by is not None else {}
        content: dict[str, Any] = {
            "event": kind, "time": time.time(),
            "by": {"username": header.get("username", ""), "session": header.get("session", "")}
            if by is not None else None,
            "status": self.status_info(), **details,
        }
        self.publish("iopub", EVENT_MSG_TYPE, content)
        if journal:
            self.recorder.event(content)
            log.info("%s", event_text(content))
        return content
