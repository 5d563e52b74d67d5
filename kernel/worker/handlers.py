"""The worker's request handlers: ``execute`` on the main thread, the rest in QUICK.

QUICK handlers run on the listener thread while a cell may be running on the
main thread. That is safe because they only read the namespace (completion
and inspection look attributes up statically first) and send through the
locked Publisher; they never run a cell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipytui.kernel.protocol.completeness import is_complete_content
from ipytui.kernel.protocol.inert import is_inert
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.worker import protection_hooks
from ipytui.kernel.worker.execution import format_exception
from ipytui.kernel.worker.protection_hooks import ProtectionContext

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

_HIDDEN = {
    "In",
    "Out",
    "_",
    "__",
    "___",
    "_i",
    "_ii",
    "_iii",
    "__builtins__",
    "__name__",
    "__doc__",
    "__loader__",
    "__spec__",
    "__package__",
    "exit",
    "quit",
    "get_ipython",
}


def user_names(namespace: dict[str, Any]) -> list[str]:
    """The names a user defined (what %who shows and a recovery restores)."""
    return sorted(name for name in namespace if name not in _HIDDEN and not name.startswith("_"))


def count_user_names(namespace: dict[str, Any]) -> int:
    """How many names a user defined: a UI asks before a restart empties them."""
    return sum(1 for name in namespace if name not in _HIDDEN and not name.startswith("_"))


# -- execute ----------------------------------------------------------------
def execute(worker: WorkerContext, msg: Message) -> None:
    """Run one execute_request: busy, execute_input, outputs, reply, idle."""
    content = msg.content
    code = content.get("code", "")
    silent = bool(content.get("silent", False))
    store = bool(content.get("store_history", True)) and not silent
    if not isinstance(code, str):
        _bad_request(worker, msg, "execute_request content 'code' must be a string")
        return
    pub = worker.publisher
    worker.interrupt_early = False  # one that came after the previous cell's code was for it
    pub.parent = msg
    worker.stdin.request = msg
    worker.payloads = []
    count = worker.execution_count + 1 if store else worker.execution_count
    if store:
        worker.execution_count = count
        remember_input(worker.namespace, code, count)
    with pub.together():
        pub.status("busy", msg)
        if not silent:
            pub.send("iopub", "execute_input", {"code": code, "execution_count": count})
    source = transform(code)
    worker.displayhook.silent = silent
    light = protection_hooks.loggable(worker, code, source, content)  # before the cell runs
    protection = worker.snapshots.protection if worker.snapshots is not None else None
    if protection is not None:
        protection.cell_started()
    shell_cell = worker.shell.before_cell(code, silent, store)
    outcome = worker.run_user_cell(source, count, raw=code)
    if outcome.ename == "KeyboardInterrupt":
        worker.discard_streams()
    worker.shell.after_cell(shell_cell, count, outcome)
    worker.flush_streams()
    changed = not is_inert(source)
    if protection is not None:
        protection_hooks.measure(worker, protection, count, changed)
    reply = {"status": outcome.status, "execution_count": count}
    if outcome.status == "ok":
        reply["payload"] = worker.payloads
        reply["user_expressions"] = _user_expressions(worker, content.get("user_expressions"))
    else:
        if outcome.ename in ("UsageError", "UndoFailed", "RemoteError"):  # the message says it all
            outcome.traceback = [f"\x1b[0;31m{outcome.ename}\x1b[0m: {outcome.evalue}"]
        if not silent:
            pub.send("iopub", "error", outcome.error_content())
        reply.update(outcome.error_content())
    # Take the queued executes before replying: a client that answers the reply
    # with a new execute must see that one run, not aborted.
    aborted = (
        worker.take_queued_executes()
        if outcome.status != "ok" and content.get("stop_on_error", True)
        else []
    )
    inert = outcome.status != "ok" or is_inert(source)
    cell_done = {
        "event": "cell_done",
        "status": outcome.status,
        "execution_count": count,
        "msg_id": msg.msg_id,
        "inert": inert or worker.snapshots is None,
        "user_names": count_user_names(worker.namespace),
        "changed": changed,
        **({"protection": protection.info()} if protection is not None else {}),
    }
    # The snapshot is forked before the reply: once a client holds a cell's reply,
    # the state after it survives a kill of the whole kernel (the snapshot writes
    # its checkpoint when it sees the supervisor gone), and a restore right after
    # the cell finds it announced. (At level idle it waits for the idle moment.)
    if not inert and protection_hooks.take_restore_point(worker, count, msg, code, light):
        pub.parent = None  # promoted: the supervisor has answered this cell for the dead worker
        worker.stdin.request = None
        return
    # One write: the reply and idle first (the supervisor forwards them before it
    # keeps its books), then the cell's bookkeeping and its restore point's event.
    with pub.together():
        pub.reply("shell", msg, "execute_reply", reply, metadata={"status": outcome.status})
        pub.status("idle", msg)
        pub.sup(cell_done)
        protection_hooks.announce_point(worker)
    pub.parent = None
    worker.stdin.request = None
    if aborted:
        abort_queued(worker, aborted)


def transform(code: str) -> str:
    try:
        from ipytui.kernel.protocol.syntax import transform_cell
        from ipytui.kernel.worker.magics.registry import rewrite_cell
    except ImportError:
        return code
    try:
        return transform_cell(rewrite_cell(code))
    except Exception:  # noqa: BLE001 - a transformer bug must not lose the cell
        log.exception("magic transform failed; running the cell as plain Python")
        return code


def remember_input(ns: dict[str, Any], code: str, count: int) -> None:
    ns.setdefault("In", [""]).append(code)
    ns["_iii"], ns["_ii"], ns["_i"] = ns.get("_ii", ""), ns.get("_i", ""), code
    ns[f"_i{count}"] = code


def _user_expressions(worker: WorkerContext, expressions: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if not isinstance(expressions, dict):
        return results
    from ipytui.kernel.worker.display import format_object

    for name, expr in expressions.items():
        try:
            value = eval(str(expr), worker.namespace)  # noqa: S307
            data, metadata = format_object(value)
            results[name] = {"status": "ok", "data": data, "metadata": metadata}
        except Exception as exc:  # noqa: BLE001
            results[name] = {
                "status": "error",
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": format_exception(exc),
            }
    return results


def abort_queued(worker: WorkerContext, queued: list[Message] | None = None) -> None:
    """After an error with stop_on_error, answer already-queued executes 'aborted'."""
    for msg in worker.take_queued_executes() if queued is None else queued:
        pub = worker.publisher
        pub.status("busy", msg)
        pub.reply(
            "shell",
            msg,
            _reply_type(msg.msg_type),  # an engine's queue holds applies too
            {"status": "aborted", "execution_count": worker.execution_count},
            metadata={"status": "aborted"},
        )
        pub.status("idle", msg)
        pub.sup({"event": "cell_done", "status": "aborted", "msg_id": msg.msg_id})


def _bad_request(worker: WorkerContext, msg: Message, why: str) -> None:
    pub = worker.publisher
    pub.status("busy", msg)
    pub.reply(
        "shell",
        msg,
        msg.msg_type.replace("_request", "_reply"),
        {
            "status": "error",
            "ename": "BadRequest",
            "evalue": why,
            "traceback": [why],
            "execution_count": worker.execution_count,
        },
    )
    pub.status("idle", msg)
    pub.sup({"event": "cell_done", "status": "error", "msg_id": msg.msg_id})


# -- quick requests (listener thread) ----------------------------------------
def _reply_type(msg_type: str) -> str:
    return (
        msg_type[: -len("_request")] + "_reply"
        if msg_type.endswith("_request")
        else msg_type + "_reply"
    )


def unknown_request(worker: WorkerContext, channel: str, msg: Message) -> None:
    """An error reply that names the request type we do not know."""
    if not msg.msg_type.endswith("_request"):
        log.warning("ignored %s message on %s", msg.msg_type, channel)
        return
    text = f"unknown message type {msg.msg_type!r}"
    worker.publisher.reply(
        channel,
        msg,
        _reply_type(msg.msg_type),
        {"status": "error", "ename": "UnknownMessageType", "evalue": text, "traceback": [text]},
    )


def _text_arg(msg: Message, key: str, default: str = "") -> str:
    value = msg.content.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{msg.msg_type} content {key!r} must be a string")
    return value


def _cursor(msg: Message, code: str) -> int:
    pos = msg.content.get("cursor_pos", len(code))
    if pos is None:
        return len(code)
    if not isinstance(pos, int):
        raise TypeError(f"{msg.msg_type} content 'cursor_pos' must be an integer")
    return max(0, min(pos, len(code)))


def _guarded(reply_type: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., None]]:
    """Wrap a content-producing handler: bad content → an error reply, never silence."""

    def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., None]:
        def handler(worker: WorkerContext, channel: str, msg: Message) -> None:
            try:
                content = fn(worker, msg)
            except (TypeError, ValueError) as exc:
                content = {
                    "status": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc),
                    "traceback": [str(exc)],
                }
            worker.publisher.reply(channel, msg, reply_type, content)

        return handler

    return wrap


@_guarded("complete_reply")
def complete(worker: WorkerContext, msg: Message) -> dict[str, Any]:
    code = _text_arg(msg, "code")
    from ipytui.kernel.worker.completion import complete as do_complete

    return do_complete(code, _cursor(msg, code), worker.namespace)


@_guarded("inspect_reply")
def inspect(worker: WorkerContext, msg: Message) -> dict[str, Any]:
    code = _text_arg(msg, "code")
    level = msg.content.get("detail_level", 0)
    from ipytui.kernel.worker.inspection import inspect_request

    return inspect_request(code, _cursor(msg, code), 1 if level else 0, worker.namespace)


@_guarded("is_complete_reply")
def is_complete(worker: WorkerContext, msg: Message) -> dict[str, Any]:
    return is_complete_content(transform(_text_arg(msg, "code")))


@_guarded("comm_info_reply")
def comm_info(worker: WorkerContext, msg: Message) -> dict[str, Any]:
    """The user comms open in the worker (comm_open/msg/close go to comms.CommDispatcher)."""
    from ipytui.kernel.worker.comms import comm_info as open_comms

    target = msg.content.get("target_name")
    if target is not None and not isinstance(target, str):
        raise TypeError("comm_info_request content 'target_name' must be a string")
    return {"status": "ok", "comms": open_comms(target)}


def debug(worker: WorkerContext, channel: str, msg: Message) -> None:
    """A DAP request for the debugger; answered even while a cell is stopped at a breakpoint."""
    worker.publisher.reply(channel, msg, "debug_reply", worker.debugger.handle(msg.content, msg))


QUICK: dict[str, Callable[[WorkerContext, str, Message], None]] = {
    "debug_request": debug,
    "complete_request": complete,
    "inspect_request": inspect,
    "is_complete_request": is_complete,
    "comm_info_request": comm_info,
}


class ExitRequest:
    """``exit`` / ``quit`` in a cell: ask the client to quit (the ask_exit payload).

    As in IPython, a bare ``exit`` is called when it would be displayed
    (``autocall_on_display``), and the payload says ``keepkernel: False``: a
    client that started the kernel stops it, as with ipykernel. Only an
    explicit ``exit(keep_kernel=False)`` also asks an ipytui UI attached to a
    shared kernel to stop it (``ipytui_shutdown``).
    """

    autocall_on_display = True

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker

    def __repr__(self) -> str:
        return "Type exit or exit() to leave this client."

    def __call__(self, keep_kernel: bool | None = None) -> None:
        # ``keepkernel`` as ipykernel sends it (False unless asked), so jupyter console
        # leaves as it does there; ipytui UIs read ``ipytui_shutdown`` instead, which
        # only an explicit ``exit(keep_kernel=False)`` sets: a plain exit() in one UI
        # must not end the kernel every other client is using.
        self._worker.payloads.append(
            {
                "source": "ask_exit",
                "keepkernel": bool(keep_kernel),
                "ipytui_shutdown": keep_kernel is False,
            }
        )


def install_shell(worker: WorkerContext) -> None:
    """Put the magics object in builtins as ``__ipytui__`` (used by transformed cells)."""
    import builtins

    try:
        from .magics.shell import MagicShell
    except ImportError:
        return
    worker.namespace["exit"] = worker.namespace["quit"] = ExitRequest(worker)
    builtins.__ipytui__ = MagicShell(MagicContext(worker))  # type: ignore[attr-defined]


class MagicContext(ProtectionContext):
    """What magics may use of the worker (the KernelContext protocol)."""

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker

    @property
    def user_ns(self) -> dict[str, Any]:
        return self._worker.namespace

    @property
    def execution_count(self) -> int:
        return self._worker.execution_count

    def add_payload(self, payload: dict[str, Any]) -> None:
        self._worker.payloads.append(payload)

    @property
    def allow_stdin(self) -> bool:
        request = self._worker.stdin.request
        return bool(request and request.content.get("allow_stdin", True))

    def history(self, hist_access_type: str = "tail", **kwargs: Any) -> list[Any]:
        return self._worker.journal().history_request(hist_access_type=hist_access_type, **kwargs)

    def object_help(self, expr: str, detail: int) -> str | None:
        from ipytui.kernel.worker.inspection import object_help

        return object_help(expr, detail, self._worker.namespace)
