"""Comms for user code: the ``comm`` package wired to the worker.

``comm.create_comm`` and ``comm.get_comm_manager`` are the two functions the
``comm`` package asks a kernel to replace (ipywidgets and friends call them);
``install`` points them at a ``KernelComm`` that publishes on IOPub and at one
``CommManager`` for the worker. Messages from clients (comm_open, comm_msg,
comm_close) come on the exec pipe with the executes, in the order the shell
channel received them, and run on the main thread between cells, as ipykernel
runs its shell messages: a cell sent after a slider moved sees the slider's
last value, and an update sent while a cell runs waits for it. Their callbacks
are interruptible like a cell, and run with that message as the current parent
so their output (an ``interact`` re-run) is attributed to it. The presence comm
never gets here: the supervisor answers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import comm
from comm.base_comm import BaseComm, CommManager
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.worker.notebook_shell import get_ipython

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

INCOMING = ("comm_open", "comm_msg", "comm_close")
RESTORED = ("the kernel's worker crashed and was restored from a snapshot; this comm was closed: "
            "run its cell again to show it")
UNKNOWN = "no such comm in this kernel (it may have been opened before a crash or a restart)"


class KernelComm(BaseComm):
    """A comm whose messages go out on IOPub through the worker's publisher."""

    publisher: Any = None  # set by install(); one publisher per worker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        shell = get_ipython()
        self.kernel = shell.kernel if shell is not None else None  # ipywidgets' Output looks here
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: dict[str, Any] | None = None,
                    metadata: dict[str, Any] | None = None, buffers: list[bytes] | None = None,
                    **keys: Any) -> None:
        if msg_type == "comm_msg" and self._closed:
            return  # a closed comm's peer is gone: nothing would read it
        content = {"comm_id": self.comm_id, "data": data or {}, **keys}
        self.publisher.send("iopub", msg_type, content, metadata=metadata,
                            buffers=[bytes(b) for b in buffers or []])

    def handle_msg(self, msg: dict[str, Any]) -> None:
        """A client's comm_msg: the callback, between the cell events libraries hook."""
        if self._msg_callback is None:
            return
        shell = get_ipython()
        if shell is not None:
            shell.events.trigger("pre_execute")
        self._msg_callback(msg)
        if shell is not None:
            shell.events.trigger("post_execute")


_MANAGER = CommManager()


def get_comm_manager() -> CommManager:
    """The worker's one comm manager."""
    return _MANAGER


def create_comm(*args: Any, **kwargs: Any) -> BaseComm:
    """A new comm of this kernel (what ``comm.create_comm`` returns in the worker)."""
    return KernelComm(*args, **kwargs)


def comm_info(target_name: Any = None) -> dict[str, dict[str, str]]:
    """comm_info_reply's ``comms``: the open comms, of one target if named."""
    return {comm_id: {"target_name": c.target_name} for comm_id, c in list(_MANAGER.comms.items())
            if target_name in (None, "", c.target_name)}


class CommDispatcher:
    """Runs a client's comm message on the main thread, in the shell channel's order."""

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker

    def handle(self, msg: Message) -> None:
        """busy, the message's handler (interruptible), idle; a failing callback's
        traceback goes out as an ``error`` with the message as parent."""
        worker = self._worker
        pub = worker.publisher
        worker.interrupt_early = False  # one that came before this message was not for it
        pub.status("busy", msg)
        pub.parent = msg
        try:
            with worker.interruptible():
                HANDLERS[msg.msg_type](msg)
        except KeyboardInterrupt:
            worker.discard_streams()  # as for a cell: Ctrl+C stops the flood now
            _show_traceback()
        except Exception:  # noqa: BLE001 - a library's comm bug must not end the worker
            _show_traceback()
        finally:
            worker.flush_streams()
            pub.parent = None
            pub.status("idle", msg)


def _show_traceback() -> None:
    shell = get_ipython()
    if shell is not None:
        shell.showtraceback()
    else:
        log.exception("comm handler failed")


def _closed_by_kernel(comm_id: str, why: str, parent: Message | None) -> None:
    KernelComm.publisher.send("iopub", "comm_close", {"comm_id": comm_id, "data": {"reason": why}},
                              parent=parent)


def _on_open(msg: Message) -> None:
    content = msg.content
    comm_id, target_name = content.get("comm_id"), content.get("target_name")
    if not isinstance(comm_id, str) or not isinstance(target_name, str):
        raise ValueError("comm_open needs string 'comm_id' and 'target_name'")
    target = _MANAGER.targets.get(target_name)
    if target is None:
        _closed_by_kernel(comm_id, f"no comm target {target_name!r} is registered in this kernel",
                          msg)
        return
    new = create_comm(comm_id=comm_id, primary=False, target_name=target_name)
    _MANAGER.register_comm(new)
    try:
        target(new, msg.as_dict())
    except Exception:
        new.close(data={"reason": f"the comm target {target_name!r} failed"})
        raise


def _on_msg(msg: Message) -> None:
    comm_id = msg.content.get("comm_id")
    found = _MANAGER.comms.get(comm_id) if isinstance(comm_id, str) else None
    if found is None:
        if isinstance(comm_id, str):
            _closed_by_kernel(comm_id, UNKNOWN, msg)  # the front end drops a stale comm
        return
    found.handle_msg(msg.as_dict())


def _on_close(msg: Message) -> None:
    comm_id = msg.content.get("comm_id")
    found = _MANAGER.comms.pop(comm_id, None) if isinstance(comm_id, str) else None
    if found is not None:
        found._closed = True
        found.handle_close(msg.as_dict())


HANDLERS: dict[str, Callable[[Message], None]] = {
    "comm_open": _on_open, "comm_msg": _on_msg, "comm_close": _on_close,
}


def close_all_after_restore() -> int:
    """In a promoted snapshot: close every comm with the reason, so no widget is a zombie.

    The front end may have changed them after this snapshot was taken, and
    the crashed worker may have opened others: their state cannot be trusted.
    Returns how many were closed.
    """
    closed = 0
    for widget in _ipywidgets_instances():
        if widget.comm is not None and not widget.comm._closed:
            widget.comm.close(data={"reason": RESTORED})
            closed += 1
        widget.close()  # ipywidgets' own bookkeeping; the comm is closed already
    for open_comm in list(_MANAGER.comms.values()):
        open_comm.close(data={"reason": RESTORED})
        closed += 1
    return closed


def _ipywidgets_instances() -> list[Any]:
    """ipywidgets' live widgets, if user code imported ipywidgets."""
    import sys

    module = sys.modules.get("ipywidgets.widgets.widget")
    return list(getattr(module, "_instances", {}).values()) if module is not None else []


def install(publisher: Any) -> None:
    """Replace the ``comm`` package's two factory functions with the worker's."""
    KernelComm.publisher = publisher
    comm.create_comm = create_comm
    comm.get_comm_manager = get_comm_manager
