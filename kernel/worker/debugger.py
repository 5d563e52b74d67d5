"""Jupyter's debugger protocol in the worker, on debugpy.

``debug_request`` (control channel) carries a DAP request; the answer is a
``debug_reply`` with the DAP response, and the adapter's events go out as
``debug_event`` on IOPub. Most requests are forwarded to debugpy's adapter
(``dap.DapConnection``); the Jupyter additions are answered here: ``dumpCell``,
``debugInfo``, ``inspectVariables``, ``richInspectVariables``, ``source``, and
``configurationDone`` (sent to the adapter during ``attach``).

The listener thread serves these requests, so they are answered while the
main thread is stopped at a breakpoint; the kernel's own threads are marked
for pydevd not to trace or suspend them. Once debugpy runs in a worker it
cannot be forked safely, so that worker takes no more snapshots (a crash then
restores the last snapshot from before the debugger started, and the
supervisor tells the front end the debug session ended).
"""

from __future__ import annotations

import ast
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipytui.kernel.worker import debug_cells
from ipytui.kernel.worker.dap import TIMEOUT, DapConnection, DapError
from ipytui.kernel.worker.display import format_object

if TYPE_CHECKING:
    from ipytui.kernel.protocol.wire import Message
    from ipytui.kernel.worker.context import WorkerContext

log = logging.getLogger("ipytui.worker")

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NO_FORK = "the debugger is on in this worker (debugpy does not survive fork())"


def available() -> bool:
    """Whether debugpy can be imported (kernel_info says ``debugger: true`` then)."""
    import importlib.util

    return importlib.util.find_spec("debugpy") is not None


def response(request: dict[str, Any], success: bool = True, body: dict[str, Any] | None = None,
             message: str = "") -> dict[str, Any]:
    """A DAP response to ``request``."""
    reply: dict[str, Any] = {"type": "response", "seq": 0, "request_seq": request.get("seq", 0),
                             "command": request.get("command", ""), "success": success,
                             "body": body or {}}
    if message:
        reply["message"] = message
    return reply


class Debugger:
    """One worker's debugger: debugpy started on first ``initialize``."""

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker
        self.endpoint: tuple[str, int] | None = None  # the adapter's client address
        self.dap: DapConnection | None = None
        self.breakpoints: dict[str, list[dict[str, Any]]] = {}
        self.stopped_threads: set[int] = set()
        self.parent: Message | None = None  # the last debug_request: parent of events
        self._seq = itertools.count(1_000_000)  # our own requests' seq, apart from the client's
        self._lock = threading.Lock()  # one request at a time
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "initialize": self._initialize, "attach": self._attach,
            "configurationDone": self._configuration_done, "dumpCell": self._dump_cell,
            "debugInfo": self._debug_info, "inspectVariables": self._inspect_variables,
            "richInspectVariables": self._rich_inspect, "source": self._source,
            "setBreakpoints": self._set_breakpoints, "disconnect": self._disconnect,
            "copyToGlobals": self._copy_to_globals,
        }

    @property
    def started(self) -> bool:
        return self.dap is not None and not self.dap.closed

    def cell_filename(self, code: str) -> str | None:
        """The file a cell runs from: its hashed path while debugging, else None."""
        return debug_cells.dump(code) if self.started else None

    def handle(self, request: Any, parent: Message) -> dict[str, Any]:
        """Answer one DAP request (the content of a debug_request)."""
        if not isinstance(request, dict) or not isinstance(request.get("command"), str) \
                or not isinstance(request.get("seq", 0), int):
            return response({}, False, message="a debug_request holds a DAP request: "
                                               "{'type': 'request', 'seq': int, 'command': str}")
        with self._lock:
            self.parent = parent
            try:
                handler = self.handlers.get(request["command"], self._forward)
                return handler(request)
            except (DapError, OSError, RuntimeError) as exc:
                return response(request, False, message=f"debugger: {exc}")

    # -- starting and stopping ---------------------------------------------------
    def _initialize(self, request: dict[str, Any]) -> dict[str, Any]:
        if not self.started:
            self._start()
        return self._forward(request)

    def _start(self) -> None:
        if self.endpoint is None:
            import debugpy

            _hide_kernel_threads()
            self._worker.snapshots.blocked = NO_FORK
            debugpy.configure(subProcess=False)
            host, port = debugpy.listen(("127.0.0.1", 0))
            sys.settrace(None)  # listen() traced this (listener) thread; only user code needs it
            self.endpoint = (str(host), int(port))
            self._worker.publisher.sup({"event": "debugger", "on": True})
        self.dap = DapConnection(*self.endpoint, on_event=self._on_event)

    def _attach(self, request: dict[str, Any]) -> dict[str, Any]:
        dap = self._need_started()
        assert self.endpoint is not None
        args = dict(request.get("arguments") or {})
        args.update({"connect": {"host": self.endpoint[0], "port": self.endpoint[1]},
                     "logToFile": False, "subProcess": False,
                     "rules": [{"path": PACKAGE_DIR, "include": False}]})
        initialized = dap.expect_event("initialized")
        answer = dap.request_later({**request, "arguments": args})
        if not initialized.wait(TIMEOUT):
            raise DapError("debugpy did not initialize")
        dap.request({"type": "request", "seq": next(self._seq), "command": "configurationDone"})
        return answer()

    def _configuration_done(self, request: dict[str, Any]) -> dict[str, Any]:
        return response(request)  # sent to the adapter during attach already

    def _disconnect(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = self._forward(request) if self.started else response(request)
        if self.dap is not None:
            self.dap.close()
        self.dap = None
        self.breakpoints = {}
        self.stopped_threads = set()
        return reply

    # -- forwarded ----------------------------------------------------------------
    def _need_started(self) -> DapConnection:
        if self.dap is None or self.dap.closed:
            raise DapError("the debugger is not started (send 'initialize' first)")
        return self.dap

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._need_started().request(request)

    def _set_breakpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = self._forward(request)
        path = ((request.get("arguments") or {}).get("source") or {}).get("path")
        if reply.get("success") and isinstance(path, str):
            self.breakpoints[path] = list((request.get("arguments") or {}).get("breakpoints", []))
        return reply

    def _on_event(self, event: dict[str, Any]) -> None:
        body = event.get("body") or {}
        if event.get("event") == "stopped" and isinstance(body.get("threadId"), int):
            self.stopped_threads.add(body["threadId"])
        elif event.get("event") == "continued":
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId"))
        self._worker.publisher.send("iopub", "debug_event", event, parent=self.parent)

    # -- answered here ------------------------------------------------------------
    def _dump_cell(self, request: dict[str, Any]) -> dict[str, Any]:
        code = (request.get("arguments") or {}).get("code")
        if not isinstance(code, str):
            return response(request, False, message="dumpCell needs arguments.code (a string)")
        return response(request, body={"sourcePath": debug_cells.dump(code)})

    def _debug_info(self, request: dict[str, Any]) -> dict[str, Any]:
        return response(request, body={
            "isStarted": self.started, "hashMethod": "Murmur2", "hashSeed": debug_cells.HASH_SEED,
            "tmpFilePrefix": debug_cells.prefix(), "tmpFileSuffix": debug_cells.SUFFIX,
            "breakpoints": [{"source": path, "breakpoints": bps}
                            for path, bps in self.breakpoints.items()],
            "stoppedThreads": sorted(self.stopped_threads), "richRendering": True,
            "exceptionPaths": ["Python Exceptions"], "copyToGlobals": True})

    def _inspect_variables(self, request: dict[str, Any]) -> dict[str, Any]:
        from ipytui.kernel.worker.handlers import user_names

        namespace = self._worker.namespace
        variables = [{"name": name, "value": _short_repr(namespace[name]),
                      "type": type(namespace[name]).__name__, "evaluateName": name,
                      "variablesReference": 0}
                     for name in user_names(namespace) if name in namespace]
        return response(request, body={"variables": variables})

    def _evaluate(self, expression: str, frame_id: Any, context: str = "repl") -> dict[str, Any]:
        """An ``evaluate`` in a stopped frame, as our own request ("clipboard": not shortened)."""
        return self._forward({"type": "request", "seq": next(self._seq), "command": "evaluate",
                              "arguments": {"expression": expression, "frameId": frame_id,
                                            "context": context}})

    def _copy_to_globals(self, request: dict[str, Any]) -> dict[str, Any]:
        """A stopped frame's variable into the user namespace (the panel's "copy to globals")."""
        args = request.get("arguments") or {}
        src, dst = args.get("srcVariableName"), args.get("dstVariableName")
        if not (isinstance(src, str) and src.isidentifier() and isinstance(dst, str)
                and dst.isidentifier()):
            return response(request, False, message="copyToGlobals needs two variable names")
        reply = self._evaluate(f"globals().__setitem__({dst!r}, {src})", args.get("srcFrameId"))
        return response(request, bool(reply.get("success")), message=reply.get("message", ""))

    def _rich_inspect(self, request: dict[str, Any]) -> dict[str, Any]:
        args = request.get("arguments") or {}
        name = args.get("variableName")
        if self.stopped_threads and isinstance(name, str) and name.isidentifier() \
                and args.get("frameId") is not None:
            return self._rich_inspect_frame(request, name, args["frameId"])
        if not isinstance(name, str) or name not in self._worker.namespace:
            return response(request, False, message=f"no variable {name!r} in the namespace")
        data, metadata = format_object(self._worker.namespace[name])
        return response(request, body={"data": data,
                                       "metadata": {k: v for k, v in metadata.items() if k in data}})

    def _rich_inspect_frame(self, request: dict[str, Any], name: str, frame_id: Any) -> dict[str, Any]:
        """The mime bundle of a variable of a stopped frame, made in that frame."""
        expression = (f"__import__('ipytui.kernel.worker.display', fromlist=['format_object'])"
                      f".format_object({name})")
        reply = self._evaluate(expression, frame_id, context="clipboard")
        if not reply.get("success"):
            return response(request, False, message=reply.get("message", "cannot evaluate"))
        try:
            data, metadata = ast.literal_eval(reply["body"]["result"])
        except (ValueError, SyntaxError, KeyError, TypeError):
            return response(request, False, message="the frame's value has no displayable form")
        return response(request, body={"data": data,
                                       "metadata": {k: v for k, v in metadata.items() if k in data}})

    def _source(self, request: dict[str, Any]) -> dict[str, Any]:
        path = ((request.get("arguments") or {}).get("source") or {}).get("path")
        if not isinstance(path, str) or not os.path.isfile(path):
            return response(request, False, message="source unavailable")
        with open(path, encoding="utf-8", errors="replace") as f:
            return response(request, body={"content": f.read()})


def _short_repr(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the panel
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _hide_kernel_threads() -> None:
    """pydevd must neither trace nor suspend the kernel's own threads (listener, output...)."""
    for thread in threading.enumerate():
        if thread.name.startswith("ipytui-"):
            thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
            thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
