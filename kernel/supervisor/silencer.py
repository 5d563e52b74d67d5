"""Silence an interrupted cell's output that is still on its way.

A cell that prints fast has output in flight when it is interrupted: in the
worker's buffers and in the pipe to the supervisor. Forwarded, that tail
keeps every client's screen scrolling for a second or more after the user
pressed Ctrl+C. So from the interrupt until the cell's reply (at most
WINDOW seconds, in case the cell catches KeyboardInterrupt and goes on) the
supervisor drops that cell's ``stream`` messages, and tells the clients once
how many it dropped, before the cell's idle. Other cells' output, and the
interrupted cell's results, errors and displays, pass untouched.

What already left the supervisor (ZeroMQ's send queue, TCP, the client's
own receive queue) cannot be called back; the high-water marks keep that
part bounded.
"""

from __future__ import annotations

import time

from ipytui.kernel.protocol.wire import peek_parent

WINDOW = 2.0  # seconds after an interrupt during which the cell's streams are dropped


class Silencer:
    """The interrupted cell whose streams are being dropped, if any."""

    def __init__(self) -> None:
        self.msg_id = ""
        self.until = 0.0
        self.dropped = 0

    def start(self, msg_id: str) -> None:
        """An interrupt for the running cell ``msg_id`` was sent to the worker."""
        if msg_id != self.msg_id:
            self.dropped = 0
        self.msg_id, self.until = msg_id, time.monotonic() + WINDOW

    def drops(self, body: list[bytes]) -> bool:
        """Whether to drop this IOPub message from the worker (cheap when silent)."""
        if not self.msg_id or body[0] != b"stream":
            return False
        if time.monotonic() > self.until:
            self.msg_id = ""
            return False
        if peek_parent(body).get("msg_id") != self.msg_id:
            return False
        self.dropped += 1
        return True

    def finish(self, msg_id: str) -> int:
        """The cell ``msg_id`` replied: stop dropping; returns how many were dropped."""
        if msg_id != self.msg_id:
            return 0
        dropped, self.msg_id, self.dropped = self.dropped, "", 0
        return dropped
