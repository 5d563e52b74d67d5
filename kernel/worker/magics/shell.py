"""MagicShell: the object the worker installs in builtins as ``__ipytui__``.

Transformed cells call it (see kernel/syntax.py): ``line_magic``, ``cell_magic``,
``system``, ``getoutput`` and ``pinfo``. It reaches the kernel only through a
``KernelContext`` the worker implements, so it can be tested without sockets.
"""

from __future__ import annotations

import builtins
import re
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any, Protocol

from ipytui.kernel.worker.magics import process
from ipytui.kernel.worker.magics.registry import (
    ArgumentError,
    Magic,
    UsageError,
    lookup,
    magic_help,
    not_found,
)

# Names the kernel itself puts in the namespace; never listed by %who, kept by %reset.
ALWAYS_HIDDEN = frozenset(
    {"In", "Out", "exit", "quit", "get_ipython", "_", "__", "___", "_exit_code", "_oh", "_ih"}
)

_EXPANSION = re.compile(r"\$\$|\$([A-Za-z_]\w*)|\{\{|\}\}|\{([^{}]+)\}")


class KernelContext(Protocol):
    """What the worker gives the magics.

    An optional ``allow_stdin: bool`` attribute (True while the running cell's
    client accepts input_request) lets ``%reset`` ask for confirmation.
    """

    user_ns: dict[str, Any]
    execution_count: int

    def add_payload(self, payload: dict[str, Any]) -> None:
        """Attach a payload (page, set_next_input) to the current execute_reply."""

    def history(self, hist_access_type: str, **kwargs: Any) -> list[Any]:
        """A history_request answered from the journal (Journal.history_request)."""

    def object_help(self, expr: str, detail: int) -> str | None:
        """Plain-text help for ``expr`` in the user namespace, None if not found."""


def _caller_locals(frame: FrameType | None, user_ns: dict[str, Any]) -> dict[str, Any] | None:
    """The caller's locals when it runs inside a function, else None (module level)."""
    if frame is None or frame.f_globals is not user_ns:
        return None
    local_ns = frame.f_locals
    return None if local_ns is frame.f_globals else dict(local_ns)


class MagicShell:
    """Runs magics, shell commands and help requests for transformed cells."""

    def __init__(self, context: KernelContext, hidden: Iterable[str] | None = None) -> None:
        self.context = context
        names = context.user_ns if hidden is None else hidden
        self.hidden: set[str] = set(names) | ALWAYS_HIDDEN
        self.local_ns: dict[str, Any] | None = None  # caller's locals during a magic call
        self.previous_dir: str | None = None

    @property
    def user_ns(self) -> dict[str, Any]:
        return self.context.user_ns

    @property
    def allow_stdin(self) -> bool:
        """Whether ``input()`` can reach the client of the running cell."""
        return bool(getattr(self.context, "allow_stdin", False))

    def install(self) -> None:
        """Make this shell reachable from user code as the builtin ``__ipytui__``."""
        builtins.__ipytui__ = self  # type: ignore[attr-defined]

    # -- namespaces ---------------------------------------------------------

    def namespace(self) -> dict[str, Any]:
        """User globals overlaid with the calling function's locals, for lookups."""
        return self.user_ns if self.local_ns is None else {**self.user_ns, **self.local_ns}

    def expand(self, text: str, local_ns: dict[str, Any] | None = None) -> str:
        """Expand ``{expr}`` and ``$name`` from the namespace; what fails stays as written."""
        if "$" not in text and "{" not in text:
            return text
        ns = self.user_ns if local_ns is None else {**self.user_ns, **local_ns}

        def replace(m: re.Match[str]) -> str:
            token, name, expr = m.group(0), m.group(1), m.group(2)
            if token in ("$$", "{{", "}}"):
                return token[0]
            if name is not None:
                return str(ns[name]) if name in ns else token
            try:
                return str(eval(expr, self.user_ns, ns))
            except Exception:
                return token

        return _EXPANSION.sub(replace, text)

    # -- entry points called by transformed code ------------------------------

    def line_magic(self, name: str, line: str = "") -> Any:
        """Run ``%name line``; the magic's return value (``x = %time f()``)."""
        magic = lookup(name, "line")
        if magic is None:
            raise not_found(name, "line")
        return self._call(magic, _caller_locals(sys._getframe(1), self.user_ns), line)

    def cell_magic(self, name: str, line: str, cell: str) -> Any:
        """Run ``%%name line`` over ``cell``."""
        magic = lookup(name, "cell")
        if magic is None:
            raise not_found(name, "cell")
        return self._call(magic, _caller_locals(sys._getframe(1), self.user_ns), line, cell)

    def _call(self, magic: Magic, local_ns: dict[str, Any] | None, line: str, *cell: str) -> Any:
        if magic.expand_vars:
            line = self.expand(line, local_ns)
        outer, self.local_ns = self.local_ns, local_ns
        try:
            return magic.fn(self, line, *cell)
        except ArgumentError as exc:
            raise UsageError(f"{exc}\nUsage: {magic.usage}") from None
        finally:
            self.local_ns = outer

    def system(self, cmd: str) -> None:
        """``!cmd``: run in the shell, output streamed live; sets ``_exit_code``."""
        local_ns = _caller_locals(sys._getframe(1), self.user_ns)
        self.user_ns["_exit_code"] = process.run_streaming(self.expand(cmd, local_ns), shell=True)

    def getoutput(self, cmd: str) -> process.SList:
        """``x = !cmd``: the command's output lines (stderr included); sets ``_exit_code``."""
        local_ns = _caller_locals(sys._getframe(1), self.user_ns)
        text, code = process.capture(self.expand(cmd, local_ns))
        self.user_ns["_exit_code"] = code
        return process.SList(text.splitlines())

    def pinfo(self, expr: str, detail: int = 0) -> None:
        """``obj?``/``obj??``/``%magic?``: help text into the pager payload."""
        if expr.startswith("%"):
            text = magic_help(expr, detail)
        else:  # `timeit?` finds the magic when no object has that name
            text = self.context.object_help(expr, detail)
            if text is None and expr.isidentifier():
                text = magic_help(f"%{expr}", detail)
        if text is None:
            print(f"Object `{expr}` not found.")
            return
        self.page(text)

    # -- helpers for magics ---------------------------------------------------

    def page(self, text: str) -> None:
        """Show text in the client's pager (what jupyter console pages)."""
        self.context.add_payload({"source": "page", "data": {"text/plain": text}, "start": 0})

    def set_next_input(self, text: str, replace: bool = True) -> None:
        """Put text into the client's next input (``%load``)."""
        self.context.add_payload({"source": "set_next_input", "text": text, "replace": replace})
