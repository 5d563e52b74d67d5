"""input() and getpass() over the stdin channel, to the client that ran the cell."""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipytui.kernel.protocol.wire import Message
    from ipytui.kernel.worker.publisher import Publisher


class StdinNotImplementedError(RuntimeError):
    """The client that ran this cell does not accept input requests."""


class StdinBridge:
    """Sends input_request to the cell's client and waits for its input_reply."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.replies: queue.Queue[Message] = queue.Queue()
        self.request: Message | None = None  # the execute_request being served
        self.before_prompt = lambda: None  # flush streams so the prompt follows output

    def ask(self, prompt: Any = "", password: bool = False) -> str:
        request = self.request
        if request is None or not request.content.get("allow_stdin", True):
            raise StdinNotImplementedError(
                "input() was called, but this client does not support input requests "
                "(allow_stdin=False)"
            )
        self.before_prompt()
        while not self.replies.empty():  # drop answers to older prompts
            self.replies.get_nowait()
        self._publisher.send("stdin", "input_request", {"prompt": str(prompt), "password": password},
                             parent=request, identities=request.identities)
        reply = self.replies.get()  # SIGINT interrupts this wait with KeyboardInterrupt
        value = reply.content.get("value", "")
        if reply.content.get("status") == "error" or not isinstance(value, str):
            raise EOFError("input was cancelled by the client")
        return value

    def input(self, prompt: Any = "") -> str:
        return self.ask(prompt, password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        return self.ask(prompt, password=True)
