"""InputPrompt: answers ``input()`` (and ``getpass()``) from the running cell."""

from __future__ import annotations

from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label


class InputPrompt(Horizontal):
    """The kernel's prompt and a one-line answer; Enter sends it."""

    DEFAULT_CSS = """
    InputPrompt {
        height: auto;
    }
    InputPrompt > Label {
        width: auto;
    }
    InputPrompt > Input {
        width: 1fr;
    }
    """

    class Answered(Message):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prompt = ""
        self.password = False
        self._label = Label(id="input-prompt-text")
        self._input = Input(id="input-prompt-value")

    def compose(self):
        yield self._label
        yield self._input

    def ask(self, prompt: str, password: bool) -> None:
        self.prompt = prompt
        self.password = password
        self._label.update(prompt or "input:")
        self._input.password = password
        self._input.value = ""
        self.add_class("-open")
        self._input.focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Answered(event.value))
