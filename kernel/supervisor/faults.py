"""Injected faults, for tests that prove the supervisor outlives its handlers.

``IPYTUI_INJECT_FAULTS`` names points (comma-separated) where the supervisor
raises :class:`InjectedFault` the first time it gets there, e.g.
``request:kernel_info_request,up:books,presence``. Unset (always, outside
tests), ``hit`` is one set lookup. The points:

- ``request:<msg_type>``: routing a verified request of that type
- ``presence``: noting a request's sender in the peer table
- ``up:books``: the bookkeeping after forwarding a worker's shell/control reply
- ``loop``: the first step of the main loop run under ``Supervisor._safely``
"""

from __future__ import annotations

import os

ENV = "IPYTUI_INJECT_FAULTS"


class InjectedFault(RuntimeError):
    """A failure a test asked for."""


class Faults:
    """The points still armed; each fires once."""

    def __init__(self, spec: str | None = None) -> None:
        spec = os.environ.get(ENV, "") if spec is None else spec
        self.armed = {point.strip() for point in spec.split(",") if point.strip()}

    def hit(self, point: str) -> None:
        """Raise InjectedFault if this point is armed (and disarm it)."""
        if self.armed and point in self.armed:
            self.armed.discard(point)
            raise InjectedFault(f"injected fault at {point}")
