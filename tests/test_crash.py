"""The crash matrix and the supervisor's promises, against the real ipytui kernel.

For each way a worker can die (segfault, abort, ``os._exit``, SIGKILL, C-stack
overflow), through our KernelClient and through jupyter_client: the crashed
cell gets an error reply and its idle, the report is published, the kernel
answers again with the state from before the crash (unpicklable objects
included), and requests sent meanwhile are served. Then: crashes in a row,
SIGINT, killing the supervisor, clients that go away, restart and restore.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from conftest import IPYTUI_ARGV
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.protocol.connection import write_connection_file
from ipytui.kernel.protocol.events import EVENT_MSG_TYPE
from ipytui.kernel.protocol.recovery import report_text
from ipytui.kernel.protocol.wire import Message
from jupyter_client.blocking import BlockingKernelClient

pytestmark = pytest.mark.timeout(60)

T = 30.0  # generous: a loaded 2-core machine must not make these tests flaky

# name -> (cell that kills the worker, words the error's evalue must hold)
CRASHES: dict[str, tuple[str, str]] = {
    "segfault": ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    "abort": ("import os; os.abort()", "SIGABRT"),
    "exit": ("import os; os._exit(3)", "code 3"),
    "sigkill": ("import os; os.kill(os.getpid(), 9)", "SIGKILL"),
    # CPython 3.11 runs pure-Python recursion without using the C stack (it
    # ends in RecursionError), so recurse in C: the json scanner, with the
    # recursion limit out of the way, overflows the 8 MiB main-thread stack.
    "c_stack_overflow": (
        "import sys, json; sys.setrecursionlimit(10**7); json.loads('[' * 10**6)",
        "SIGSEGV",
    ),
}

# State from before the crash: a plain value, a lambda, a generator part-way
# through and an open file; the last three cannot be pickled.
SETUP = textwrap.dedent("""\
    import os
    x = 41
    square = lambda v: v * v
    gen = (i for i in range(10))
    first = next(gen)
    fh = open(os.devnull)
""")
SETUP_NAMES = {"x", "square", "gen", "first", "fh"}
CHECK = "print(x, square(3), next(gen), fh.closed)"
CHECK_OUT = "41 9 1 False\n"


def _crash_event(iopub: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one crash event (an unparented ``ipytui_event``) among iopub contents."""
    events = [c for t, c in iopub if t == EVENT_MSG_TYPE and c.get("event") == "crash"]
    assert len(events) == 1, iopub
    return events[0]


async def _report_of(sub: Any) -> dict[str, Any]:
    """The structured recovery report of the next crash event on a subscription."""
    event = await _next(sub, lambda m: m.msg_type == EVENT_MSG_TYPE and m.content["event"] == "crash")
    assert not event.parent_id  # unparented: nbclient and JupyterLab never see it as output
    return event.content["report"]


def _outputs(iopub: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Drop the busy and execute_input a dying worker may or may not have sent."""
    return [(t, c) for t, c in iopub
            if t != "execute_input" and (t, c) != ("status", {"execution_state": "busy"})]


def _check_crash_outputs(reply: dict[str, Any], iopub: list[tuple[str, dict[str, Any]]],
                         cause: str, report: dict[str, Any]) -> dict[str, Any]:
    """Assert the reply and iopub of a crashed cell: the report is told once, as
    the error's traceback (no display_data repeating it)."""
    assert reply["status"] == "error", reply
    assert reply["ename"] == "KernelDied"
    assert cause in reply["evalue"], reply["evalue"]
    types = [t for t, _ in iopub]
    assert types.count("error") == 1 and "display_data" not in types, types
    assert iopub[-1] == ("status", {"execution_state": "idle"}), types
    error = next(c for t, c in iopub if t == "error")
    assert error["ename"] == "KernelDied" and cause in error["evalue"]
    assert error["traceback"] == report_text(report).splitlines()
    assert cause in report["cause"]
    if report["restored_from"] == "pending":
        # On a loaded machine the new worker can take longer than the kernel's 3 s:
        # the report then says so, and the callers' CHECK cell proves the state came back.
        assert any("no worker was ready in time" in note for note in report["notes"]), report
        return report
    assert report["restored_from"] == "snapshot"
    assert set(report["restored"]) >= SETUP_NAMES, report
    return report


# -- through our asyncio KernelClient ------------------------------------------
async def _worker_pid(client: KernelClient) -> int:
    return (await client.kernel_info(timeout=T))["ipytui"]["worker_pid"]


async def _snapshot_taken(worker_pid: int) -> None:
    """Wait until the worker has forked the snapshot of its last cell."""
    worker = psutil.Process(worker_pid)
    deadline = time.monotonic() + T
    while not any(child.name() == "ipytui-snapshot" for child in worker.children()):
        assert time.monotonic() < deadline, "no snapshot process appeared"
        await asyncio.sleep(0.02)


async def _gone(pid: int) -> None:
    """Wait until the process ``pid`` has ended."""
    with contextlib.suppress(psutil.NoSuchProcess):
        await asyncio.to_thread(psutil.Process(pid).wait, T)


async def _next(sub: Any, pred: Callable[[Message], bool]) -> Message:
    async def scan() -> Message:
        async for msg in sub:
            if pred(msg):
                return msg
        raise AssertionError("iopub subscription ended")

    return await asyncio.wait_for(scan(), T)


@pytest.mark.parametrize("crash", list(CRASHES))
async def test_crash_kernel_client(crash: str, start_kernel, make_client) -> None:
    code, cause = CRASHES[crash]
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    assert (await client.execute(SETUP, timeout=T)).status == "ok"
    old_worker = await _worker_pid(client)
    sub = client.iopub_messages()
    seen: list[Message] = []
    observer = await make_client(info)  # another client, only watching
    watched = observer.iopub_messages()

    started = time.monotonic()
    crashed = asyncio.ensure_future(
        client.execute(code, stop_on_error=False, timeout=T, on_iopub=seen.append))
    # Queued behind the crashing cell in the dying worker: with stop_on_error
    # False it must run on the new worker, with the restored state.
    queued = asyncio.ensure_future(client.execute("x + 1", stop_on_error=False, timeout=T))
    # Sent in the gap, once the old worker is gone (a snapshot comes back without a
    # "restarting" status: front ends take that for a lost session).
    await _gone(old_worker)
    in_gap = asyncio.ensure_future(client.execute("x + 2", timeout=T))
    info_in_gap = asyncio.ensure_future(client.kernel_info(timeout=T))

    result = await crashed
    replied = time.monotonic() - started
    report = _check_crash_outputs(result.reply.content, _outputs(
        [(m.msg_type, m.content) for m in seen]), cause, await _report_of(sub))
    assert [m.parent_id for m in seen] == [result.reply.parent_id] * len(seen)

    crashed_id = result.reply.parent_id
    error = await _next(watched, lambda m: m.msg_type == "error" and m.parent_id == crashed_id)
    assert error.content["ename"] == "KernelDied"
    await _next(watched, lambda m: m.parent_id == crashed_id
                and m.content.get("execution_state") == "idle")
    assert (await queued).data == {"text/plain": "42"}
    assert (await in_gap).data == {"text/plain": "43"}
    assert (await info_in_gap)["status"] == "ok"
    check = await client.execute(CHECK, timeout=T)
    assert check.status == "ok" and check.text == CHECK_OUT
    assert proc.poll() is None
    assert await _worker_pid(client) != old_worker
    print(f"\n{crash}: reply after {replied:.3f} s, report says {report['seconds']} s")


@pytest.mark.parametrize("stop_on_error", [True, False])
async def test_stop_on_error_of_the_crashed_cell_decides(stop_on_error: bool, start_kernel,
                                                         make_client, tmp_path) -> None:
    """As for any error, the failed cell's stop_on_error says if the queue behind it is aborted."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    flag = tmp_path / "queued"
    assert (await client.execute("x = 1", timeout=T)).status == "ok"
    # The cell dies once the next one is surely queued behind it: the supervisor
    # reads shell requests in order, so its kernel_info_reply comes after it took x = 2.
    crashed = asyncio.ensure_future(client.execute(
        f"import os, pathlib, time\nwhile not pathlib.Path({str(flag)!r}).exists():\n"
        "    time.sleep(0.01)\nos._exit(3)", stop_on_error=stop_on_error, timeout=T))
    queued = asyncio.ensure_future(client.execute("x = 2", timeout=T))
    await asyncio.sleep(0)  # both tasks run to their first await: both requests are sent
    await client.request("shell", "kernel_info_request", timeout=T)
    flag.touch()
    assert (await crashed).error[0] == "KernelDied"
    assert (await queued).status == ("aborted" if stop_on_error else "ok")
    expected = "1" if stop_on_error else "2"
    assert (await client.execute("x", timeout=T)).data == {"text/plain": expected}


# -- through jupyter_client ----------------------------------------------------
def _blocking_client(info) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    kc.wait_for_ready(timeout=T)
    return kc


def _collect(kc: BlockingKernelClient, msg_ids: list[str],
             events: list[tuple[str, dict[str, Any]]] | None = None) -> tuple[dict, dict]:
    """Replies and iopub (type, content) lists of msg_ids, once each has reply and idle;
    unparented ``ipytui_event`` messages go to ``events``."""
    replies: dict[str, dict[str, Any]] = {}
    iopub: dict[str, list[tuple[str, dict[str, Any]]]] = {i: [] for i in msg_ids}
    deadline = time.monotonic() + T
    while len(replies) < len(msg_ids) or not all(
            iopub[i] and iopub[i][-1] == ("status", {"execution_state": "idle"}) for i in msg_ids):
        left = deadline - time.monotonic()
        assert left > 0, (replies, iopub)
        try:
            msg = kc.get_iopub_msg(timeout=0.05)
            parent = msg["parent_header"].get("msg_id")
            if parent in iopub:
                iopub[parent].append((msg["msg_type"], msg["content"]))
            elif msg["msg_type"] == EVENT_MSG_TYPE and events is not None:
                events.append((msg["msg_type"], msg["content"]))
        except Exception:  # noqa: BLE001 - queue.Empty
            pass
        try:
            msg = kc.get_shell_msg(timeout=0.01)
            if msg["parent_header"].get("msg_id") in iopub:
                replies[msg["parent_header"]["msg_id"]] = msg["content"]
        except Exception:  # noqa: BLE001 - queue.Empty
            pass
    return replies, iopub


def _run(kc: BlockingKernelClient, code: str) -> tuple[dict[str, Any], list]:
    msg_id = kc.execute(code)
    replies, iopub = _collect(kc, [msg_id])
    return replies[msg_id], iopub[msg_id]


@pytest.mark.parametrize("crash", list(CRASHES))
def test_crash_jupyter_client(crash: str, start_kernel) -> None:
    code, cause = CRASHES[crash]
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = _blocking_client(info)
    try:
        assert _run(kc, SETUP)[0]["status"] == "ok"
        crash_id = kc.execute(code, stop_on_error=False)
        queued_id = kc.execute("x + 1", stop_on_error=False)
        events: list[tuple[str, dict[str, Any]]] = []
        replies, iopub = _collect(kc, [crash_id, queued_id], events)
        _check_crash_outputs(replies[crash_id], _outputs(iopub[crash_id]), cause,
                             _crash_event(events)["report"])
        assert replies[queued_id]["status"] == "ok"
        assert ("execute_result", 42) in [
            (t, int(c["data"]["text/plain"])) for t, c in iopub[queued_id] if t == "execute_result"]
        reply, outputs = _run(kc, CHECK)
        assert reply["status"] == "ok"
        assert [c["text"] for t, c in outputs if t == "stream"] == [CHECK_OUT]
        assert proc.poll() is None
    finally:
        kc.stop_channels()


async def test_killed_snapshot_falls_back_to_the_checkpoint(start_kernel, make_client,
                                                            tmp_path) -> None:
    """The OOM killer may pick the waiting snapshot: the checkpoint serves, the report says so."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    assert (await client.execute(SETUP, timeout=T)).status == "ok"
    kernel_id = (await client.kernel_info(timeout=T))["ipytui"]["kernel_id"]
    worker = await _worker_pid(client)
    await _snapshot_taken(worker)
    ckpt = tmp_path / "data" / "checkpoints" / f"{kernel_id}.pickle"
    deadline = time.monotonic() + T
    while not ckpt.exists():
        assert time.monotonic() < deadline, "no checkpoint was written"
        await asyncio.sleep(0.05)
    snapshot = next(p for p in psutil.Process(worker).children() if p.name() == "ipytui-snapshot")
    snapshot.kill()
    while snapshot.status() != psutil.STATUS_ZOMBIE:  # its worker reaps it only later
        assert time.monotonic() < deadline, "the snapshot did not die"
        await asyncio.sleep(0.02)

    sub = client.iopub_messages()
    result = await client.execute(CRASHES["segfault"][0], timeout=T)
    assert result.error[0] == "KernelDied"
    report = await _report_of(sub)
    assert report["restored_from"] == "checkpoint"
    assert {"x", "first", "square"} <= set(report["restored"])  # the lambda by value
    assert {"gen", "fh"} <= set(report["lost"])  # not picklable
    assert any("snapshot" in note for note in report["notes"]), report["notes"]
    assert (await client.execute("x", timeout=T)).data == {"text/plain": "41"}


async def test_a_snapshot_forked_while_jedi_warms_up_serves_a_crash(start_kernel,
                                                                     make_client) -> None:
    """The first completion warms jedi up in a thread (about a second) and the cell run
    right after forks its snapshot meanwhile. Promoted after a crash, that snapshot
    still imports, runs jedi and completes: nothing stayed locked."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    await client.complete("import collections\ncollections.Ord", timeout=T)
    assert (await client.execute("kept = 41", timeout=T)).status == "ok"
    await _snapshot_taken(await _worker_pid(client))
    result = await client.execute(CRASHES["segfault"][0], timeout=T)
    assert result.error is not None and result.error[0] == "KernelDied"
    check = await client.execute(
        "import jedi, pydoc, json\n"
        "from ipytui.kernel.worker import jedi_runner\n"
        "jedi_runner.warm_up()\n"
        "print(kept + 1, sorted(c.name for c in jedi.Interpreter('import os\\nos.pa', [{}]).complete(2, 5)))",
        timeout=T)
    assert check.status == "ok", check.error
    assert check.text.startswith("42 ") and "'path'" in check.text
    reply = await client.complete("kept.bit_len", timeout=T)
    assert any("bit_length" in m for m in reply["matches"])


# -- crashes in a row ----------------------------------------------------------
async def test_crashes_in_a_row_stop_with_a_clear_message(start_kernel, make_client) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    sub = client.iopub_messages()
    replies = []
    for _ in range(6):
        result = await client.execute(CRASHES["exit"][0], timeout=T)
        replies.append(result)
        if "stopped restarting" in "\n".join(result.reply.content.get("traceback", [])):
            break
    assert all(r.error[0] == "KernelDied" for r in replies)
    assert len(replies) >= 5, "gave up before backing off"
    last = replies[-1]
    assert "stopped restarting" in "\n".join(last.reply.content["traceback"]), last.reply.content
    stream = await _next(sub, lambda m: m.msg_type == "stream")
    report = await _report_of(sub)
    assert report["restored_from"] == "stopped"
    assert "stopped restarting" in stream.content["text"]
    # Nobody hangs while it is stopped: requests are answered with the reason.
    after = await client.execute("1 + 1", timeout=T)
    assert after.status == "error" and "stopped restarting" in after.error[1]
    assert (await client.kernel_info(timeout=T))["status"] == "ok"
    assert proc.poll() is None
    # A restart by hand starts over with a working kernel.
    await client.shutdown(restart=True, timeout=T)
    assert (await client.execute("1 + 1", timeout=T)).data == {"text/plain": "2"}


# -- SIGINT ------------------------------------------------------------------
@pytest.mark.parametrize("to_group", [False, True], ids=["pid", "process-group"])
async def test_sigint_interrupts_the_running_cell_only(to_group: bool, start_kernel,
                                                       make_client) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    assert (await client.execute("x = 5", timeout=T)).status == "ok"
    worker = await _worker_pid(client)
    kill = os.killpg if to_group else os.kill

    # Idle: harmless.
    for _ in range(3):
        kill(proc.pid, signal.SIGINT)
    assert (await client.execute("x + 1", timeout=T)).data == {"text/plain": "6"}

    started = asyncio.Event()

    def on_iopub(msg: Message) -> None:
        if msg.msg_type == "stream" and "running" in msg.content.get("text", ""):
            started.set()

    # One line: the client sees 'running' while print() may still be returning in the
    # worker, so the interrupt can land in either call; the user's line is the same.
    cell = asyncio.ensure_future(client.execute(
        "import time\nprint('running', flush=True); time.sleep(60)", timeout=T, on_iopub=on_iopub))
    await asyncio.wait_for(started.wait(), T)
    kill(proc.pid, signal.SIGINT)
    result = await cell
    assert result.error is not None and result.error[0] == "KeyboardInterrupt"
    traceback = "\n".join(result.reply.content["traceback"])
    assert "time.sleep(60)" in traceback  # the user's line, and none of the kernel's
    assert "_on_sigint" not in traceback and "/kernel/" not in traceback, traceback
    assert proc.poll() is None
    assert await _worker_pid(client) == worker
    assert (await client.execute("x", timeout=T)).data == {"text/plain": "5"}


async def test_interrupting_input_shows_the_users_line_only(start_kernel, make_client) -> None:
    """input() waits in kernel, queue and threading code: none of it is in the traceback."""
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    asked = asyncio.Event()

    async def answer(prompt: str, password: bool) -> str:
        asked.set()
        await asyncio.Event().wait()  # never answers
        return ""

    client.input_handler = answer
    cell = asyncio.ensure_future(client.execute("x = 1\nname = input('name? ')", timeout=T))
    await asyncio.wait_for(asked.wait(), T)
    await client.interrupt(timeout=T)
    result = await cell
    assert result.error is not None and result.error[0] == "KeyboardInterrupt"
    frames = [line for line in result.reply.content["traceback"] if line.lstrip().startswith("File ")]
    assert len(frames) == 1 and "<cell-" in frames[0], result.reply.content["traceback"]


# -- the supervisor dies -------------------------------------------------------
async def test_killing_the_supervisor_leaves_no_orphans(start_kernel, make_client) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    assert (await client.execute("x = 1", timeout=T)).status == "ok"
    supervisor = psutil.Process(proc.pid)
    await _snapshot_taken(await _worker_pid(client))
    family = supervisor.children(recursive=True)
    assert len(family) >= 2
    proc.kill()
    # Not reaped yet: a zombie supervisor must not keep its snapshots waiting.
    gone, alive = psutil.wait_procs(family, timeout=T)
    assert not alive, alive
    proc.wait(timeout=T)


# -- clients come and go -----------------------------------------------------
async def test_closed_client_leaves_the_kernel_running(start_kernel, make_client) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    first = await make_client(info)
    assert (await first.execute("x = 7", timeout=T)).status == "ok"
    await first.stop()
    second = await make_client(info)
    assert (await second.execute("x", timeout=T)).data == {"text/plain": "7"}
    assert proc.poll() is None


KILLED_CLIENT = """\
import sys
from jupyter_client.blocking import BlockingKernelClient
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc.wait_for_ready(timeout=30)
kc.execute_interactive("z = 5", timeout=30)
msg_id = kc.execute("import time; time.sleep(0.5); w = z + 1")
while True:  # the kernel has it (a send still queued in zmq would die with us)
    msg = kc.get_iopub_msg(timeout=30)
    if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
        break
print("sent", flush=True)
import time; time.sleep(60)
"""


async def test_killed_client_leaves_the_kernel_running(start_kernel, make_client,
                                                       tmp_path) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    path = write_connection_file(info, tmp_path / "for-the-client.json")
    client = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(client.stdout.readline), T)
        assert line == "sent\n"
    finally:
        client.kill()
        client.wait()
        client.stdout.close()
    second = await make_client(info)
    # Queued behind the dead client's cell, which still runs to its end.
    assert (await second.execute("w", timeout=T)).data == {"text/plain": "6"}
    assert proc.poll() is None


# -- restart on demand ---------------------------------------------------------
async def test_restart_and_restore(start_kernel, make_client) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info, username="alice")
    observer = await make_client(info, username="bob")  # told, without asking
    told = observer.iopub_messages()
    assert (await client.execute(SETUP, timeout=T)).status == "ok"
    worker = await _worker_pid(client)
    # The snapshot is announced before the reply: a restore sent at once finds it.
    reply = await client.request("control", "ipytui_restore_request", {}, timeout=T)
    assert reply.msg_type == "ipytui_restore_reply"
    assert reply.content == {"status": "ok", "method": "snapshot", "after_cell": 1}
    check = await client.execute(CHECK, timeout=T)
    assert check.text == CHECK_OUT
    restored = await _worker_pid(client)
    assert restored != worker
    event = await _next(told, lambda m: m.msg_type == EVENT_MSG_TYPE)
    assert not event.parent_id
    assert event.content["event"] == "restore" and event.content["by"]["username"] == "alice"
    assert (event.content["method"], event.content["after_cell"]) == ("snapshot", 1)
    assert event.content["status"]["worker_pid"] == restored
    assert event.content["status"]["restarts"] == 1
    assert event.content["status"]["user_names"] >= len(SETUP_NAMES)

    assert (await client.shutdown(restart=True, timeout=T))["restart"] is True
    event = await _next(told, lambda m: m.msg_type == EVENT_MSG_TYPE)
    assert (event.content["event"], event.content["by"]["username"]) == ("restart", "alice")
    assert event.content["status"]["restarts"] == 2
    assert event.content["status"]["user_names"] == 0
    fresh = await client.execute("x", timeout=T)
    assert fresh.error is not None and fresh.error[0] == "NameError"
    assert fresh.execution_count == 1
    assert await _worker_pid(client) not in (worker, restored)
    assert event.content["status"]["worker_pid"] == await _worker_pid(client)
    await client.interrupt(timeout=T)
    event = await _next(told, lambda m: m.msg_type == EVENT_MSG_TYPE)
    assert (event.content["event"], event.content["by"]["username"]) == ("interrupt", "alice")
    assert proc.poll() is None
