"""Cell events for libraries: ``get_ipython().events.register('post_execute', f)``.

The event names and call signatures are IPython's, because that is what
libraries (matplotlib backends, tqdm, ipywidgets' comm handling) register
for. A failing callback is reported and the others still run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# name -> how many arguments its callbacks take (IPython's EventManager spec).
EVENTS: dict[str, int] = {
    "pre_execute": 0,
    "pre_run_cell": 1,
    "post_execute": 0,
    "post_run_cell": 1,
    "shell_initialized": 1,
}


class CellInfo:
    """What ``pre_run_cell`` callbacks receive (IPython's ExecutionInfo, the used fields)."""

    def __init__(self, raw_cell: str, silent: bool, store_history: bool) -> None:
        self.raw_cell = raw_cell
        self.silent = silent
        self.store_history = store_history
        self.shell_futures = True
        self.cell_id = None


class CellResult:
    """What ``post_run_cell`` callbacks receive (IPython's ExecutionResult, the used fields)."""

    def __init__(self, info: CellInfo, execution_count: int, error: BaseException | None) -> None:
        self.info = info
        self.execution_count = execution_count
        self.error_before_exec = None
        self.error_in_exec = error
        self.result = None

    @property
    def success(self) -> bool:
        return self.error_in_exec is None


class EventManager:
    """Callbacks per event name; ``trigger`` calls them in registration order."""

    def __init__(self, on_error: Callable[[], None] | None = None) -> None:
        self.callbacks: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}
        self._on_error = on_error or (lambda: None)

    def _checked(self, event: str) -> list[Callable[..., Any]]:
        if event not in self.callbacks:
            raise KeyError(f"unknown event {event!r}; known: {', '.join(sorted(EVENTS))}")
        return self.callbacks[event]

    def register(self, event: str, function: Callable[..., Any]) -> None:
        """Call ``function`` on ``event`` (registering twice calls it once)."""
        if not callable(function):
            raise TypeError(f"need a callable, got {function!r}")
        callbacks = self._checked(event)
        if function not in callbacks:
            callbacks.append(function)

    def unregister(self, event: str, function: Callable[..., Any]) -> None:
        """Stop calling ``function``; ValueError if it was not registered."""
        callbacks = self._checked(event)
        if function not in callbacks:
            raise ValueError(f"{function!r} is not registered for {event!r}")
        callbacks.remove(function)

    def trigger(self, event: str, *args: Any) -> None:
        """Run the callbacks of ``event``; an exception is shown, the rest still run."""
        for function in list(self._checked(event)):
            try:
                function(*args)
            except (KeyboardInterrupt, Exception):  # noqa: BLE001 - a library's bug is not the cell's
                print(f"Error in callback {function!r} (for {event}):", file=sys.stderr)
                self._on_error()
