"""Refusing replayed messages: a signature is accepted once.

Two guards. ``ReplayGuard`` remembers the last N signatures; clients use it
for what their kernel sends. ``WindowReplayGuard`` is the kernel's: it
accepts only messages whose header ``date`` lies within ``window`` seconds of
its own clock, and remembers every signature it accepted until that message's
date has left the window. A replay is then refused for as long as the
original could be accepted at all, however many messages came in between,
and memory is bounded by what arrives within one window, not by a count.

A message without a parseable ``date`` cannot be placed in the window, so
the windowed guard refuses it (jupyter_client and ipytui always send one).
A date without a UTC offset is taken as UTC, as Jupyter writes dates.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

DEFAULT_REPLAY_WINDOW = 600.0  # seconds either side of the kernel's clock


class ReplayError(ValueError):
    """A message refused by a replay guard; the text says why."""


class StaleMessage(ReplayError):
    """A message dated outside the window, or undated: worth telling its sender."""


class ReplayGuard:
    """Remembers the last ``capacity`` signatures, so a replay of them is refused."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def check_and_add(self, signature: bytes) -> bool:
        """True if the signature is new (and now remembered), False on a replay."""
        if signature in self._seen:
            return False
        self._seen[signature] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def admit(self, signature: bytes, header: dict[str, Any]) -> None:
        """Raise ReplayError for a signature seen among the last ``capacity``."""
        if not self.check_and_add(signature):
            raise ReplayError("replayed signature")


def parse_date(value: Any) -> float | None:
    """A header date (ISO 8601) as a POSIX timestamp, or None if it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class WindowReplayGuard:
    """Accepts a message once, and only while its date is within the window.

    Memory: about 100 bytes per message accepted within one window (a 16-byte
    key per signature, kept in a set and in a list per second of expiry).
    """

    def __init__(self, window: float = DEFAULT_REPLAY_WINDOW,
                 clock: Callable[[], float] = time.time) -> None:
        if window <= 0:
            raise ValueError("the replay window must be a positive number of seconds")
        self.window = window
        self._clock = clock
        self._seen: set[bytes] = set()
        self._expiring: dict[int, list[bytes]] = {}  # second after which these may go
        self._seconds: list[int] = []  # heap of the keys of _expiring

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, signature: bytes, header: dict[str, Any]) -> None:
        """Remember the signature, or raise ReplayError (replayed, stale, undated)."""
        sent = parse_date(header.get("date"))
        if sent is None:
            raise StaleMessage("header 'date' is missing or not an ISO 8601 date; "
                               "undated messages are refused to prevent replays")
        now = self._clock()
        self._forget(now)
        if abs(now - sent) > self.window:
            raise StaleMessage(f"header 'date' is {now - sent:+.0f} s from the kernel's clock, "
                               f"outside the accepted window of ±{self.window:.0f} s "
                               "(stale, replayed, or a clock that is off)")
        key = _key(signature)
        if key in self._seen:
            raise ReplayError("replayed signature")
        self._seen.add(key)
        # After sent + window the date check refuses this message anyway.
        second = math.ceil(sent + self.window)
        bucket = self._expiring.get(second)
        if bucket is None:
            bucket = self._expiring[second] = []
            heapq.heappush(self._seconds, second)
        bucket.append(key)

    def _forget(self, now: float) -> None:
        seconds = self._seconds
        while seconds and seconds[0] < now:
            self._seen.difference_update(self._expiring.pop(heapq.heappop(seconds)))


def _key(signature: bytes) -> bytes:
    """16 bytes that stand for a hex signature (its first 128 bits); other bytes as they are.

    (No hashlib here: it loads OpenSSL, which signing.py keeps out of the kernel.)
    """
    try:
        return bytes.fromhex(signature[:32].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return bytes(signature)
