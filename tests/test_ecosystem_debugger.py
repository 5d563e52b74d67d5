"""The Jupyter debugger protocol on the ipytui kernel, through jupyter_client (issue #15).

A client does what JupyterLab's debugger panel does: ``initialize``,
``attach``, ``debugInfo``, ``dumpCell``, ``setBreakpoints``,
``configurationDone``, runs the cell, waits for the ``stopped`` debug_event,
reads the stack and the variables, and continues. Against a real kernel with
debugpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import count
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from test_ecosystem_plots import value_of
from test_jupyter_client import TIMEOUT, fresh, ipytui_kernelspecs  # noqa: F401 - fixtures

pytest.importorskip("debugpy")
pytestmark = pytest.mark.timeout(180)

CELL = "def add(a, b):\n    total = a + b\n    return total\n\nresult = add(2, 3)\nprint('result', result)\n"
_seq = count(1)


def dap(kc: BlockingKernelClient, command: str, **arguments: Any) -> dict[str, Any]:
    """Send one DAP request as a debug_request on control; the DAP response."""
    request = {"type": "request", "seq": next(_seq), "command": command, "arguments": arguments}
    msg = kc.session.msg("debug_request", request)
    kc.control_channel.send(msg)
    deadline = time.monotonic() + TIMEOUT
    while True:
        reply = kc.get_control_msg(timeout=max(0.01, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            assert reply["msg_type"] == "debug_reply"
            return reply["content"]


def debug_event(kc: BlockingKernelClient, event: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """The first debug_event named ``event`` on IOPub (other messages kept in seen)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        seen.append(msg)
        if msg["msg_type"] == "debug_event" and msg["content"].get("event") == event:
            return msg["content"]


def start_debugging(kc: BlockingKernelClient) -> None:
    reply = dap(kc, "initialize", clientID="test", adapterID="python", pathFormat="path",
                linesStartAt1=True, columnsStartAt1=True, supportsVariableType=True,
                supportsVariablePaging=True, supportsRunInTerminalRequest=True, locale="en")
    assert reply["success"], reply
    reply = dap(kc, "attach")
    assert reply["success"], reply


def test_breakpoint_in_a_cell_stops_and_continues(fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    kc.kernel_info()
    assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["debugger"] is True
    start_debugging(kc)
    info = dap(kc, "debugInfo")["body"]
    assert info["isStarted"] is True and info["hashMethod"] == "Murmur2"
    path = dap(kc, "dumpCell", code=CELL)["body"]["sourcePath"]
    assert path.startswith(info["tmpFilePrefix"]) and path.endswith(info["tmpFileSuffix"])
    with open(path) as f:
        assert f.read() == CELL
    reply = dap(kc, "setBreakpoints", source={"path": path}, breakpoints=[{"line": 2}],
                sourceModified=False)
    assert reply["success"] and reply["body"]["breakpoints"][0]["verified"], reply
    assert dap(kc, "configurationDone")["success"]
    assert dap(kc, "debugInfo")["body"]["breakpoints"] == [{"source": path,
                                                           "breakpoints": [{"line": 2}]}]

    seen: list[dict[str, Any]] = []
    msg_id = kc.execute(CELL)
    stopped = debug_event(kc, "stopped", seen)
    assert stopped["body"]["reason"] == "breakpoint"
    thread = stopped["body"]["threadId"]
    assert thread in dap(kc, "debugInfo")["body"]["stoppedThreads"]
    frames = dap(kc, "stackTrace", threadId=thread)["body"]["stackFrames"]
    assert (frames[0]["source"]["path"], frames[0]["line"], frames[0]["name"]) == (path, 2, "add")
    assert all("/kernel/" not in f.get("source", {}).get("path", "") for f in frames)
    scopes = dap(kc, "scopes", frameId=frames[0]["id"])["body"]["scopes"]
    local_vars = dap(kc, "variables", variablesReference=scopes[0]["variablesReference"])
    values = {v["name"]: v["value"] for v in local_vars["body"]["variables"]}
    assert (values["a"], values["b"]) == ("2", "3")

    assert dap(kc, "next", threadId=thread)["success"]
    stopped = debug_event(kc, "stopped", seen)
    frames = dap(kc, "stackTrace", threadId=stopped["body"]["threadId"])["body"]["stackFrames"]
    assert frames[0]["line"] == 3
    assert dap(kc, "continue", threadId=thread)["success"]
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
    assert value_of(kc, "result") == 5

    variables = dap(kc, "inspectVariables")["body"]["variables"]
    assert {"name": "result", "value": "5"}.items() <= next(
        v for v in variables if v["name"] == "result").items()
    rich = dap(kc, "richInspectVariables", variableName="result")["body"]
    assert rich["data"]["text/plain"] == "5"
    assert dap(kc, "disconnect", restart=False, terminateDebuggee=True)["success"]
    assert dap(kc, "debugInfo")["body"]["isStarted"] is False


def test_bad_debug_requests_get_error_replies(fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    msg = kc.session.msg("debug_request", {"not": "a DAP request"})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=TIMEOUT)
    assert reply["content"]["success"] is False and "DAP request" in reply["content"]["message"]
    reply = dap(kc, "stackTrace", threadId=1)  # before initialize
    assert reply["success"] is False and "not started" in reply["message"]
    assert value_of(kc, "1 + 1") == 2


def test_a_crash_ends_the_debug_session_and_the_kernel_goes_on(
        fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    assert value_of(kc, "before = 1; before") == 1  # a snapshot holds this state
    start_debugging(kc)
    assert dap(kc, "configurationDone")["success"]
    kc.execute("import ctypes; ctypes.string_at(0)")
    seen: list[dict[str, Any]] = []
    assert debug_event(kc, "terminated", seen)["body"] == {}
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["ename"] == "KernelDied"
    assert value_of(kc, "before") == 1
    # the restored worker never ran debugpy: a new session starts and works
    start_debugging(kc)
    assert dap(kc, "debugInfo")["body"]["isStarted"] is True


def test_a_restore_by_hand_ends_the_debug_session(fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    assert value_of(kc, "kept = 7; kept") == 7
    start_debugging(kc)
    kc.control_channel.send(kc.session.msg("ipytui_restore_request", {}))  # control only
    seen: list[dict[str, Any]] = []
    assert debug_event(kc, "terminated", seen)["event"] == "terminated"
    assert kc.control_channel.get_msg(timeout=TIMEOUT)["content"]["status"] == "ok"
    assert value_of(kc, "kept") == 7
