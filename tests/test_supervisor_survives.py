"""The supervisor outlives what clients send it and what its own handlers do.

One test per class of issue #23's message half, each against a real kernel
subprocess: handlers that raise (injected with IPYTUI_INJECT_FAULTS), a
replay long after capture, an oversized request under a configured limit
(through jupyter_client), a control-only request on shell, and presence
comm ids that are not strings. After each, the same worker process still
answers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import IPYTUI_ARGV
from ipytui.kernel.protocol.connection import ConnectionInfo
from jupyter_client.blocking.client import BlockingKernelClient
from raw_client import RawClient, assert_still_serving, kernel_log, worker_pid

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 30


@pytest.fixture
def raw() -> Iterator[list[RawClient]]:
    made: list[RawClient] = []
    yield made
    for client in made:
        client.close()


def connect(made: list[RawClient], info: ConnectionInfo) -> RawClient:
    client = RawClient(info)
    made.append(client)
    reply = client.call("shell", "execute_request", {"code": "hits = 0", "silent": False})
    assert reply.content["status"] == "ok", reply.content
    return client


def the_worker(proc: Any) -> int:
    """The kernel's worker pid, seen from outside (the supervisor's only child then)."""
    children = psutil.Process(proc.pid).children()
    assert len(children) >= 1, children
    return children[0].pid


# -- handlers that raise ----------------------------------------------------------
def test_failing_handlers_are_answered_and_the_loop_goes_on(
        start_kernel, raw: list[RawClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTUI_INJECT_FAULTS",
                       "loop,presence,up:books,request:kernel_info_request,"
                       "request:complete_request,request:comm_msg")
    info, proc = start_kernel(IPYTUI_ARGV)
    client = connect(raw, info)  # its execute hits 'presence' and 'up:books': served anyway
    pid = the_worker(proc)
    for channel in ("control", "shell"):
        msg_type = "kernel_info_request" if channel == "control" else "complete_request"
        content = {} if channel == "control" else {"code": "pri", "cursor_pos": 3}
        failed = client.call(channel, msg_type, content)
        assert failed.content["status"] == "error", failed.content
        assert failed.content["ename"] == "InternalError"
        assert "InjectedFault" in failed.content["evalue"]
        again = client.call(channel, msg_type, content)
        assert again.content["status"] == "ok", again.content
    client.request("shell", "comm_msg", {"comm_id": "nobody", "data": {}})  # no reply possible
    assert_still_serving(client)
    assert client.call("shell", "execute_request", {"code": "hits += 1"}).content["status"] == "ok"
    assert client.hits() == 1
    assert worker_pid(client) == pid == the_worker(proc)
    assert proc.poll() is None
    log = kernel_log(tmp_path)
    for point in ("loop", "presence", "up:books", "request:kernel_info_request",
                  "request:complete_request", "request:comm_msg"):
        assert f"InjectedFault: injected fault at {point}" in log, log[-3000:]


# -- replays ----------------------------------------------------------------------------
def test_a_replay_is_refused_after_5000_other_messages(
        start_kernel, raw: list[RawClient], tmp_path: Path) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = connect(raw, info)
    msg, captured = client.build("execute_request", {"code": "hits += 1", "silent": False})
    client.send_frames("shell", captured)
    assert client.reply_to("shell", msg.msg_id).content["status"] == "ok"
    sent = 0
    while sent < 5000:  # in batches, so that neither side queues thousands of replies
        ids = [client.request("control", "kernel_info_request") for _ in range(500)]
        for msg_id in ids:
            assert client.reply_to("control", msg_id).content["status"] == "ok"
        client.seen.clear()
        sent += len(ids)
    client.send_frames("shell", captured)
    assert client.hits() == 1
    assert not [m for m in client.seen if m.parent_id == msg.msg_id]
    assert kernel_log(tmp_path).count("dropped a message on shell: replayed signature") == 1
    assert_still_serving(client)


def test_the_replay_window_is_a_kernel_flag(start_kernel, raw: list[RawClient]) -> None:
    argv = [sys.executable, "-m", "ipytui.kernel", "--replay-window", "5", "-f"]
    info, _ = start_kernel(argv)
    client = connect(raw, info)
    msg, _ = client.build("execute_request", {"code": "hits += 1"})
    msg.header["date"] = datetime.fromtimestamp(time.time() - 60, timezone.utc).isoformat()
    client.send_frames("shell", client.codec.serialize(msg, []))
    reply = client.reply_to("shell", msg.msg_id)
    assert reply.content["ename"] == "BadRequest"
    assert "outside the accepted window of ±5 s" in reply.content["evalue"]
    assert client.hits() == 0


# -- oversized requests -------------------------------------------------------------
def test_an_oversized_request_gets_an_error_reply_under_the_configured_limit(
        start_kernel, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "ipytui.kernel", "--debug", "--max-message-bytes", "100000", "-f"]
    start_kernel(argv)
    kc = BlockingKernelClient(connection_file=str(tmp_path / "kernel-0.json"))
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        msg_id = kc.execute("big = '" + "#" * 110_000 + "'")
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "BadRequest"
        assert "over this kernel's limit of 100000 bytes" in reply["content"]["evalue"]
        fits = kc.execute("small = '" + "#" * 50_000 + "'; len(small)")
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == fits
        assert reply["content"]["status"] == "ok"
        probe = kc.execute("'big' in dir()", user_expressions={"x": "'big' in dir()"})
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == probe
        assert reply["content"]["user_expressions"]["x"]["data"]["text/plain"] == "False"
    finally:
        kc.stop_channels()
    assert "refused a execute_request on shell: message of" in kernel_log(tmp_path)


@pytest.mark.parametrize(("flag", "value"), [
    ("--max-message-bytes", "0"), ("--max-message-bytes", "-5"), ("--max-message-bytes", "many"),
    ("--replay-window", "0"), ("--replay-window", "nan"), ("--replay-window", "inf"),
])
def test_a_bad_limit_flag_is_refused_with_a_clear_error(flag: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ipytui.kernel", flag, value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert flag in done.stderr


# -- control-only requests ---------------------------------------------------------
def test_a_control_only_request_on_shell_is_refused_and_changes_nothing(
        start_kernel, raw: list[RawClient]) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = connect(raw, info)
    assert client.call("shell", "execute_request", {"code": "hits = 5"}).content["status"] == "ok"
    pid = worker_pid(client)
    for msg_type in ("ipytui_restore_request", "usage_request", "debug_request"):
        reply = client.call("shell", msg_type, {})
        assert reply.content["status"] == "error", reply.content
        assert reply.content["ename"] == "BadRequest"
        assert "only accepted on the control channel" in reply.content["evalue"]
    assert worker_pid(client) == pid  # no restore happened
    assert client.hits() == 5  # and the namespace is the same
    restored = client.call("control", "ipytui_restore_request", {})
    assert restored.content["status"] == "ok"  # where it belongs, it is obeyed
    assert worker_pid(client) != pid


# -- presence comms -----------------------------------------------------------------------
NOT_STRINGS: list[Any] = [["a", "b"], {"id": 1}, 7, None, True]


def test_presence_comm_ids_that_are_not_strings_are_dropped(
        start_kernel, raw: list[RawClient], tmp_path: Path) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = connect(raw, info)
    pid = worker_pid(client)
    client.request("shell", "comm_open", {"comm_id": "mine", "target_name": "ipytui.presence",
                                                  "data": {"name": "ok"}})
    for bad in NOT_STRINGS:
        client.request("shell", "comm_open", {"comm_id": bad, "target_name": "ipytui.presence",
                                              "data": {}})
        client.request("shell", "comm_msg", {"comm_id": bad, "data": {"type": "state"}})
        client.request("shell", "comm_close", {"comm_id": bad, "data": {}})
        client.request("shell", "comm_msg", {"comm_id": "mine", "data": bad})
    assert_still_serving(client)
    assert worker_pid(client) == pid
    log = kernel_log(tmp_path)
    assert log.count("dropped a comm_open on shell: comm_open content 'comm_id' must be a string") == 5
    assert log.count("dropped a comm_msg on shell: comm_msg content 'comm_id' must be a string") == 5
    assert log.count("dropped a comm_msg on shell: comm_msg content 'data' must be an object") == 4
