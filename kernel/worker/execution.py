"""Running a cell: compile with a trailing-expression display, run, format errors.

Cells are registered with linecache as ``<cell-N>`` so tracebacks show their
source; the kernel's own frames are trimmed from tracebacks.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
STDLIB_DIR = os.path.dirname(os.__file__) + os.sep
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


class KernelDiedError(Exception):
    """Not raised in-process; names the error a crashed cell reports."""


@dataclass
class CellOutcome:
    """How a cell ended: status 'ok' or 'error' (with ename, evalue, traceback)."""

    status: str = "ok"
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)
    result: Any = None

    def error_content(self) -> dict[str, Any]:
        return {"ename": self.ename, "evalue": self.evalue, "traceback": self.traceback}


def cell_filename(execution_count: int) -> str:
    return f"<cell-{execution_count}>"


def register_source(filename: str, source: str) -> None:
    """Make the cell's source visible to tracebacks, inspect and pdb."""
    lines = [line + "\n" for line in source.splitlines()]
    linecache.cache[filename] = (len(source), None, lines, filename)


def compile_cell(source: str, filename: str) -> tuple[list[Any], bool]:
    """Code objects for the cell; the last is 'single' mode when it ends in an expression.

    Returns (code objects, displays_last). A trailing ``;`` suppresses the display.
    """
    tree = ast.parse(source, filename=filename, mode="exec")
    body = tree.body
    display_last = bool(body) and isinstance(body[-1], ast.Expr) and not source.rstrip().endswith(";")
    codes = []
    if display_last:
        head = ast.Module(body=body[:-1], type_ignores=[])
        last = ast.Interactive(body=[body[-1]])
        if head.body:
            codes.append(compile(head, filename, "exec", flags=_FLAGS, dont_inherit=True))
        codes.append(compile(last, filename, "single", flags=_FLAGS, dont_inherit=True))
    else:
        codes.append(compile(tree, filename, "exec", flags=_FLAGS, dont_inherit=True))
    return codes, display_last


def run_code(code: Any, namespace: dict[str, Any]) -> None:
    """exec, or run to completion on a fresh loop if the cell used top-level await."""
    if code.co_flags & inspect.CO_COROUTINE:
        coro = eval(code, namespace)  # noqa: S307 - this is the kernel's job
        if coro is not None:
            _run_coroutine(coro)
    else:
        exec(code, namespace)  # noqa: S102


def _run_coroutine(coro: Any) -> Any:
    import asyncio  # 50 ms and 3 MiB of worker start-up, for the rare top-level await

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    if loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop.run_until_complete(coro)


def format_exception(exc: BaseException, ansi: bool = True) -> list[str]:
    """Traceback lines for the error reply, kernel frames removed."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(KERNEL_DIR):
        tb = tb.tb_next
    exc = exc.with_traceback(tb)
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    if isinstance(exc, KeyboardInterrupt):
        del te.stack[_interrupt_end(te.stack):]
    lines = list(te.format())
    if ansi and lines:
        lines[-1] = f"\x1b[0;31m{lines[-1].rstrip()}\x1b[0m\n"
    return [line.rstrip("\n") for line in "".join(lines).splitlines()]


def _interrupt_end(stack: traceback.StackSummary) -> int:
    """Where an interrupt's traceback should end: before the worker's own frames.

    The SIGINT handler raises inside the kernel (and input() waits in queue and
    threading code): a trailing run of kernel and stdlib frames with a kernel
    frame in it is ours, not the user's; the cell's own line is the last shown.
    """
    end, ours = len(stack), False
    while end:
        filename = stack[end - 1].filename
        if filename.startswith(KERNEL_DIR):
            ours = True
        elif not filename.startswith(STDLIB_DIR) or "-packages" in filename[len(STDLIB_DIR):]:
            break  # the user's code or a library's: worth showing
        end -= 1
    return end if ours else len(stack)


class DisplayHook:
    """sys.displayhook while a cell runs: execute_result, _, __, ___, Out[n]."""

    def __init__(self, namespace: dict[str, Any], publish: Callable[[Any, int], None]) -> None:
        self.namespace = namespace
        self.publish = publish
        self.execution_count = 0
        self.silent = False  # a silent execute shows no result and keeps _ and Out

    def __call__(self, value: Any) -> None:
        if value is None or self.silent:
            return
        if getattr(type(value), "autocall_on_display", False):
            value()  # a bare ``exit``: IPython calls it rather than showing it
            return
        ns = self.namespace
        if value is not ns.get("Out"):
            ns["___"], ns["__"], ns["_"] = ns.get("__", ""), ns.get("_", ""), value
        ns.setdefault("Out", {})[self.execution_count] = value
        ns[f"_{self.execution_count}"] = value
        builtins._ = value  # type: ignore[attr-defined]
        self.publish(value, self.execution_count)


def run_cell(source: str, execution_count: int, namespace: dict[str, Any],
             displayhook: DisplayHook, filename: str | None = None) -> CellOutcome:
    """Compile and run one cell in the namespace, capturing any exception."""
    filename = filename or cell_filename(execution_count)
    register_source(filename, source)
    displayhook.execution_count = execution_count
    saved_hook = sys.displayhook
    sys.displayhook = displayhook
    try:
        codes, _ = compile_cell(source, filename)
        for code in codes:
            run_code(code, namespace)
    except SystemExit as exc:
        return _error(exc, "SystemExit", str(exc.code))
    except BaseException as exc:  # noqa: BLE001 - every user error becomes a reply
        return _error(exc, type(exc).__name__, str(exc))
    finally:
        sys.displayhook = saved_hook
    return CellOutcome()


def _error(exc: BaseException, ename: str, evalue: str) -> CellOutcome:
    if isinstance(exc, SyntaxError):
        lines = traceback.format_exception_only(type(exc), exc)
        tb = [line.rstrip("\n") for line in "".join(lines).splitlines()]
    else:
        tb = format_exception(exc)
    return CellOutcome(status="error", ename=ename, evalue=evalue, traceback=tb)
