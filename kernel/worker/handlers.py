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
from ipytui.kernel.worker.execution import format_exception

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

_HIDDEN = {"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "__builtins__", "__name__",
           "__doc__", "__loader__", "__spec__", "__package__", "exit", "quit", "get_ipython"}


def user_names(namespace: dict[str, Any]) -> list[str]:
    """The names a user defined (what %who shows and a recovery restores)."""
    return sorted(
        name for name in namespace
        if name not in _HIDDEN and not name.startswith("_")
    )


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
    pub.parent = msg
    worker.stdin.request = msg
    worker.payloads = []
    count = worker.execution_count + 1 if store else worker.execution_count
    if store:
        worker.execution_count = count
        _remember_input(worker.namespace, code, count)
    with pub.together():
        pub.status("busy", msg)
        if not silent:
            pub.send("iopub", "execute_input", {"code": code, "execution_count": count})
    source = _transform(code)
    worker.displayhook.silent = silent
    protection = worker.snapshots.protection if worker.snapshots is not None else None
    if protection is not None:
        protection.cell_started()
    outcome = worker.run_user_cell(source, count)
    worker.flush_streams()
    changed = not is_inert(source)
    if protection is not None:
        _protection_notes(worker, protection, count, changed)
    reply = {"status": outcome.status, "execution_count": count}
    if outcome.status == "ok":
        reply["payload"] = worker.payloads
        reply["user_expressions"] = _user_expressions(worker, content.get("user_expressions"))
    else:
        if outcome.ename == "UsageError":
            outcome.traceback = [f"\x1b[0;31mUsageError\x1b[0m: {outcome.evalue}"]
        if not silent:
            pub.send("iopub", "error", outcome.error_content())
        reply.update(outcome.error_content())
    # Take the queued executes before replying: a client that answers the reply
    # with a new execute must see that one run, not aborted.
    aborted = worker.take_queued_executes() if outcome.status != "ok" and content.get("stop_on_error", True) else []
    with pub.together():
        pub.reply("shell", msg, "execute_reply", reply, metadata={"status": outcome.status})
        pub.status("idle", msg)
    pub.parent = None
    worker.stdin.request = None
    inert = outcome.status != "ok" or is_inert(source)
    pub.sup({"event": "cell_done", "status": outcome.status, "execution_count": count,
             "msg_id": msg.msg_id, "inert": inert or worker.snapshots is None,
             "changed": changed,
             **({"protection": protection.info()} if protection is not None else {})})
    if aborted:
        abort_queued(worker, aborted)
    elif not inert and worker.snapshots is not None:
        cell = {"user": msg.header.get("username", ""), "changed": _assigned(code)}
        if worker.snapshots.protection.wants_snapshot_now():
            worker.snapshots.after_cell(worker, count, msg.msg_id, cell)
        elif worker.snapshots.protection.waits_for_idle():
            worker.snapshots.protection.due = (count, msg.msg_id, cell)


def _protection_notes(worker: WorkerContext, protection: Any, count: int, changed: bool) -> None:
    """Measure the cell's copy-on-write price; say under the cell what it changed."""
    before = protection.level
    notes = protection.decide(protection.cell_finished(count), changed)
    for note in notes:
        worker.publisher.send("iopub", "stream", {"name": "stderr", "text": f"[protection] {note}\n"})
    if protection.level != before:
        if protection.level == "checkpoint":
            worker.snapshots.drop_all()
        worker.publisher.sup({"event": "protection", **protection.info(),
                              "drop": protection.level == "checkpoint"})


def _assigned(code: str) -> list[str]:
    try:
        from ipytui.kernel.protocol.syntax import assigned_names

        return sorted(assigned_names(code))[:20]
    except Exception:  # noqa: BLE001 - the timeline's names are a courtesy
        return []


def _transform(code: str) -> str:
    try:
        from ipytui.kernel.protocol.syntax import transform_cell
    except ImportError:
        return code
    try:
        return transform_cell(code)
    except Exception:  # noqa: BLE001 - a transformer bug must not lose the cell
        log.exception("magic transform failed; running the cell as plain Python")
        return code


def _remember_input(ns: dict[str, Any], code: str, count: int) -> None:
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
            results[name] = {"status": "error", "ename": type(exc).__name__, "evalue": str(exc),
                             "traceback": format_exception(exc)}
    return results


def abort_queued(worker: WorkerContext, queued: list[Message] | None = None) -> None:
    """After an error with stop_on_error, answer already-queued executes 'aborted'."""
    for msg in worker.take_queued_executes() if queued is None else queued:
        pub = worker.publisher
        pub.status("busy", msg)
        pub.reply("shell", msg, "execute_reply",
                  {"status": "aborted", "execution_count": worker.execution_count},
                  metadata={"status": "aborted"})
        pub.status("idle", msg)
        pub.sup({"event": "cell_done", "status": "aborted", "msg_id": msg.msg_id})


def _bad_request(worker: WorkerContext, msg: Message, why: str) -> None:
    pub = worker.publisher
    pub.status("busy", msg)
    pub.reply("shell", msg, msg.msg_type.replace("_request", "_reply"),
              {"status": "error", "ename": "BadRequest", "evalue": why, "traceback": [why],
               "execution_count": worker.execution_count})
    pub.status("idle", msg)
    pub.sup({"event": "cell_done", "status": "error", "msg_id": msg.msg_id})


# -- quick requests (listener thread) ----------------------------------------
def _reply_type(msg_type: str) -> str:
    return msg_type[: -len("_request")] + "_reply" if msg_type.endswith("_request") else msg_type + "_reply"


def unknown_request(worker: WorkerContext, channel: str, msg: Message) -> None:
    """An error reply that names the request type we do not know."""
    if not msg.msg_type.endswith("_request"):
        log.warning("ignored %s message on %s", msg.msg_type, channel)
        return
    text = f"unknown message type {msg.msg_type!r}"
    worker.publisher.reply(channel, msg, _reply_type(msg.msg_type),
                           {"status": "error", "ename": "UnknownMessageType", "evalue": text,
                            "traceback": [text]})


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
                content = {"status": "error", "ename": type(exc).__name__, "evalue": str(exc),
                           "traceback": [str(exc)]}
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
    return is_complete_content(_transform(_text_arg(msg, "code")))


@_guarded("comm_info_reply")
def comm_info(worker: WorkerContext, msg: Message) -> dict[str, Any]:
    return {"status": "ok", "comms": {}}


def comm_open(worker: WorkerContext, channel: str, msg: Message) -> None:
    """No comm targets live in the worker yet: close unknown comms at once."""
    comm_id = msg.content.get("comm_id")
    if isinstance(comm_id, str):
        worker.publisher.send("iopub", "comm_close", {"comm_id": comm_id, "data": {}}, parent=msg)


def _ignore(worker: WorkerContext, channel: str, msg: Message) -> None:
    return None


QUICK: dict[str, Callable[[WorkerContext, str, Message], None]] = {
    "complete_request": complete,
    "inspect_request": inspect,
    "is_complete_request": is_complete,
    "comm_info_request": comm_info,
    "comm_open": comm_open,
    "comm_msg": _ignore,
    "comm_close": _ignore,
}


class ExitRequest:
    """``exit()`` / ``quit()`` in a cell: ask the client to quit (the ask_exit payload)."""

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker

    def __repr__(self) -> str:
        return "Use exit() to leave this client; the kernel keeps running for the others."

    def __call__(self, keep_kernel: bool = True) -> None:
        self._worker.payloads.append({"source": "ask_exit", "keepkernel": keep_kernel})


def install_shell(worker: WorkerContext) -> None:
    """Put the magics object in builtins as ``__ipytui__`` (used by transformed cells)."""
    import builtins

    try:
        from .magics.shell import MagicShell
    except ImportError:
        return
    worker.namespace["exit"] = worker.namespace["quit"] = ExitRequest(worker)
    builtins.__ipytui__ = MagicShell(WorkerContext(worker))  # type: ignore[attr-defined]


class WorkerContext:
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

    def ask_supervisor(self, event: dict[str, Any]) -> dict[str, Any]:
        """A question to the supervisor about the restore points, for the running cell."""
        parent = self._worker.publisher.parent
        return self._worker.ask_supervisor({**event, "msg_id": parent.msg_id if parent else ""})

    def protection_info(self) -> dict[str, Any]:
        snapshots = self._worker.snapshots
        return snapshots.protection.info() if snapshots is not None else {}

    def set_protection(self, setting: str) -> str:
        """Apply a %protection choice; the supervisor hears of it (and drops points for off)."""
        snapshots = self._worker.snapshots
        if snapshots is None:
            return "This worker takes no snapshots."
        notice = snapshots.protection.choose(setting)
        drop = setting in ("off", "checkpoint")
        if drop:
            snapshots.drop_all()
        elif not snapshots.protection.snapshot_pid:  # protect the current state at once
            parent = self._worker.publisher.parent
            snapshots.protection.due = (self._worker.execution_count, parent.msg_id if parent else "",
                                        {"user": parent.header.get("username", "") if parent else "",
                                         "changed": []})
        self._worker.publisher.sup({"event": "protection", **snapshots.protection.info(),
                                    "drop": drop})
        return notice

    def object_help(self, expr: str, detail: int) -> str | None:
        from ipytui.kernel.worker.inspection import object_help

        return object_help(expr, detail, self._worker.namespace)
