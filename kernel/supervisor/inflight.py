"""What the supervisor tracks between a request and its answer, and of its worker.

Plain records, shared by the supervisor's routing and its crash handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipytui.kernel.protocol.engine_identity import MAIN_THREAD_REQUESTS
from ipytui.kernel.protocol.wire import Message


@dataclass
class Pending:
    """A request forwarded to the worker and not yet answered."""

    channel: str
    msg: Message
    frames: list[bytes]
    started: bool = False
    count: int | None = None  # its execution count, once execute_input was seen
    seen: int = 0  # the kernel's state (last state-changing cell) when it arrived: what
    # its sender could have seen (an undo never takes back a later cell unasked)
    sent_before: frozenset[str] = frozenset()  # its sender's executes queued when it arrived


@dataclass
class WorkerState:
    """What the supervisor knows of the current worker process."""

    pid: int = 0
    pidfd: int = -1
    hello: dict[str, Any] | None = None  # its "ready" event, once it arrived
    ready: bool = False
    spawned_at: float = 0.0
    snapshot_pid: int = 0
    snapshot_count: int = 0
    notes: list[str] = field(default_factory=list)
    debugging: bool = False  # its debugger (debugpy) was started: a session ends with it
    killed_for: str = ""  # why the supervisor ended it (the memory guard), else ""
    cell_done_due: bool = False  # an execute_reply went out, its cell_done has not come yet
    cell_done_for: str = ""  # the msg_id of the last cell_done (it may come before the reply)
    replied: Pending | None = None  # the last cell answered (its point's event follows the reply)
    spill_fd: int = -1  # the spill file a lazily promoted worker maps (worker_lifecycle)
    replay: list[Any] = field(default_factory=list)  # a promoted point's logged cells (Logged)

    def answered(self, pending: Pending) -> None:
        """A cell's reply went out: its cell_done and its point's event may follow it."""
        self.cell_done_due = self.cell_done_for != pending.msg.msg_id
        self.replied = pending


MAIN_THREAD_TYPES = MAIN_THREAD_REQUESTS | {"comm_open", "comm_msg", "comm_close"}
"""Shell messages the worker's main thread takes in arrival order (its exec pipe):
as in ipykernel, a comm message is applied before a cell sent after it, and one
that comes while a cell runs waits for it."""


def for_main_thread(channel: str, msg: Message) -> bool:
    """Whether a message goes to the worker's main thread (else to its listener)."""
    return channel == "shell" and msg.msg_type in MAIN_THREAD_TYPES


def is_shell_execute(pending: Pending) -> bool:
    """A cell (an execute_request on shell): what stop_on_error aborts and a crash blames."""
    return pending.channel == "shell" and pending.msg.msg_type == "execute_request"
