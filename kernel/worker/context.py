"""What the worker's request handlers and snapshots may use of the worker.

A structural type, so ``handlers`` and ``snapshots`` need not import the
worker loop that imports them (no import circle, not even for type hints).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from ipytui.kernel.protocol.wire import Message


class WorkerContext(Protocol):
    """The worker as its handlers see it (``ipytui.kernel.worker.loop.Worker``)."""

    namespace: dict[str, Any]
    publisher: Any
    execution_count: int
    payloads: list[dict[str, Any]]
    stdin: Any
    stdout: Any
    stderr: Any
    display: Any
    displayhook: Any
    snapshots: Any
    config: dict[str, Any]
    shell: Any  # the get_ipython() object (notebook_shell)
    debugger: Any  # debugger.Debugger
    interrupt_early: bool
    executing: bool  # user code runs on the main thread (SIGINT interrupts it)
    user_lock: Any  # held by whoever runs user code
    deferred: list[list[bytes]]  # exec-pipe messages read while a magic waited for an answer

    def journal(self) -> Any: ...

    def flush_streams(self) -> None: ...
    def discard_streams(self) -> None: ...

    def interruptible(self) -> AbstractContextManager[None]: ...

    def run_user_cell(self, code: str, count: int, raw: str | None = None) -> Any: ...

    def take_queued_executes(self) -> list[Message]: ...

    def promote(self, lost_threads: list[str], after_msg_id: str = "") -> None: ...

    def new_ask(self) -> str: ...

    def ask_supervisor(
        self, event: dict[str, Any], timeout: float = 30.0, ask: str = ""
    ) -> dict[str, Any]: ...

    def await_answer(self, ask: str, timeout: float = 30.0) -> dict[str, Any]: ...
