"""App-level messages: what the kernel session tells the screen.

The session posts these to the screen; the screen turns them into widget
attribute updates. Widgets' own messages live with the widgets.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class IopubBatch(Message):
    """IOPub messages received during one refresh tick, in arrival order."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__()
        self.messages = messages


class KernelReady(Message):
    """The kernel answered kernel_info (at start, or after a restart)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__()
        self.info = info


class KernelUnreachable(Message):
    """The kernel did not answer at start (or after a restart) in time."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class HeartbeatChanged(Message):
    """The heartbeat was lost or came back."""

    def __init__(self, ok: bool) -> None:
        super().__init__()
        self.ok = ok


class HistoryLoaded(Message):
    """The kernel's input history (oldest first), across sessions."""

    def __init__(self, entries: list[str]) -> None:
        super().__init__()
        self.entries = entries


class InputRequested(Message):
    """The running cell called input(); answer by resolving ``future``."""

    def __init__(self, prompt: str, password: bool, future: Any) -> None:
        super().__init__()
        self.prompt = prompt
        self.password = password
        self.future = future
