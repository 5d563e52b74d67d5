"""jupyter_client's KernelManager + BlockingKernelClient against the ipytui kernelspec.

This is how JupyterLab, nbclient and jupyter console see the kernel: started
by kernel name from an installed kernelspec, interrupted and shut down the
manager's way. Most tests share one kernel; those that interrupt, restart or
shut down start their own.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import IPYTUI_ARGV
from ipytui.kernel.tools import kernelspec
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 30
ANSI = re.compile(r"\x1b\[[0-9;]*m")

Outputs = list[dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def ipytui_kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``ipytui`` (interrupt by signal) and ``ipytui-msg`` (by message) in a tmp prefix."""
    root = tmp_path_factory.mktemp("jupyter-client")
    prefix = root / "prefix"
    kernelspec.install(prefix=str(prefix))
    kernelspec.install("ipytui-msg", prefix=str(prefix), interrupt_mode="message")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTUI_DATA_DIR", str(root / "ipytui"))
        yield root


def start(kernel_name: str = "ipytui") -> tuple[KernelManager, BlockingKernelClient]:
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop(km: KernelManager, kc: BlockingKernelClient) -> None:
    kc.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def shared() -> Iterator[BlockingKernelClient]:
    """One kernel for the tests that leave it healthy."""
    km, kc = start()
    yield kc
    stop(km, kc)


@pytest.fixture
def fresh() -> Iterator[Callable[..., tuple[KernelManager, BlockingKernelClient]]]:
    """Factory for a kernel of the test's own, shut down (hard) at teardown."""
    started: list[tuple[KernelManager, BlockingKernelClient]] = []

    def make(kernel_name: str = "ipytui") -> tuple[KernelManager, BlockingKernelClient]:
        started.append(start(kernel_name))
        return started[-1]

    yield make
    for km, kc in started:
        stop(km, kc)


def run(kc: BlockingKernelClient, code: str, timeout: float = TIMEOUT,
        **kwargs: Any) -> tuple[dict[str, Any], Outputs]:
    """Execute and wait for reply and idle; returns the reply and every IOPub message."""
    seen: Outputs = []
    reply = kc.execute_interactive(code, output_hook=seen.append, timeout=timeout, **kwargs)
    return reply, seen


def outputs(seen: Outputs) -> Outputs:
    return [m for m in seen if m["msg_type"] not in ("status", "execute_input")]


def stream_text(seen: Outputs, name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in seen
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def iopub_until(kc: BlockingKernelClient, pred: Callable[[dict[str, Any]], bool],
                timeout: float = TIMEOUT) -> dict[str, Any]:
    """The first IOPub message for which pred holds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no matching IOPub message")
        msg = kc.get_iopub_msg(timeout=remaining)
        if pred(msg):
            return msg


def shell_reply(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


# -- execute ------------------------------------------------------------------
def test_execute_message_order_and_result(shared: BlockingKernelClient) -> None:
    reply, seen = run(shared, "print('hi'); 6 * 7")
    assert reply["content"]["status"] == "ok"
    count = reply["content"]["execution_count"]
    assert isinstance(count, int) and count >= 1
    msg_id = reply["parent_header"]["msg_id"]
    assert all(m["parent_header"]["msg_id"] == msg_id for m in seen)
    types = [m["msg_type"] for m in seen]
    assert types == ["status", "execute_input", "stream", "execute_result", "status"]
    assert [m["content"]["execution_state"] for m in seen if m["msg_type"] == "status"] == [
        "busy", "idle"]
    assert seen[1]["content"] == {"code": "print('hi'); 6 * 7", "execution_count": count}
    assert seen[3]["content"]["data"]["text/plain"] == "42"
    assert seen[3]["content"]["execution_count"] == count


def test_streams_stdout_and_stderr(shared: BlockingKernelClient) -> None:
    reply, seen = run(shared, "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n"
                              "sys.stdout.write('more out\\n')")
    assert reply["content"]["status"] == "ok"
    assert stream_text(seen, "stdout") == "to out\nmore out\n"
    assert stream_text(seen, "stderr") == "to err\n"


def test_error_reply_and_traceback(shared: BlockingKernelClient) -> None:
    code = "def inner():\n    return 1 / 0\ninner()"
    reply, seen = run(shared, code)
    content = reply["content"]
    assert content["status"] == "error"
    assert (content["ename"], content["evalue"]) == ("ZeroDivisionError", "division by zero")
    errors = [m for m in seen if m["msg_type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["content"]["ename"] == "ZeroDivisionError"
    text = ANSI.sub("", "\n".join(content["traceback"]))
    assert "return 1 / 0" in text and "<cell-" in text  # the cell's own source lines
    assert "ipytui/kernel" not in text and "ipytui.kernel" not in text  # kernel frames trimmed


def test_execute_result_history_variables(shared: BlockingKernelClient) -> None:
    first, _ = run(shared, "'alpha'")
    second, _ = run(shared, "'beta'")
    n1, n2 = first["content"]["execution_count"], second["content"]["execution_count"]
    reply, seen = run(shared, f"(_, __, Out[{n1}], Out[{n2}], In[{n1}], _i)")
    assert reply["content"]["status"] == "ok"
    result = [m for m in seen if m["msg_type"] == "execute_result"][0]
    assert ast.literal_eval(result["content"]["data"]["text/plain"]) == (
        "beta", "alpha", "alpha", "beta", "'alpha'", f"(_, __, Out[{n1}], Out[{n2}], In[{n1}], _i)")


def test_silent_execute_has_no_execute_input_and_keeps_count(shared: BlockingKernelClient) -> None:
    before, _ = run(shared, "1")
    reply, seen = run(shared, "print('quiet'); 2", silent=True)
    assert reply["content"]["status"] == "ok"
    types = [m["msg_type"] for m in seen]
    assert "execute_input" not in types and "execute_result" not in types
    after, _ = run(shared, "3")
    assert after["content"]["execution_count"] == before["content"]["execution_count"] + 1


def test_user_expressions(shared: BlockingKernelClient) -> None:
    reply, _ = run(shared, "a = 6", user_expressions={"double": "a * 2", "bad": "1 / 0"})
    exprs = reply["content"]["user_expressions"]
    assert exprs["double"]["status"] == "ok"
    assert exprs["double"]["data"]["text/plain"] == "12"
    assert exprs["bad"]["status"] == "error"
    assert exprs["bad"]["ename"] == "ZeroDivisionError"


def test_display_with_display_id_and_update(shared: BlockingKernelClient) -> None:
    code = ("h = display('v1', display_id='progress')\n"
            "h.update('v2')\n"
            "display({'text/plain': 'raw', 'text/html': '<b>raw</b>'}, raw=True)")
    reply, seen = run(shared, code)
    assert reply["content"]["status"] == "ok"
    outs = outputs(seen)
    assert [m["msg_type"] for m in outs] == ["display_data", "update_display_data", "display_data"]
    assert outs[0]["content"]["data"]["text/plain"] == "'v1'"
    assert outs[0]["content"]["transient"] == {"display_id": "progress"}
    assert outs[1]["content"]["data"]["text/plain"] == "'v2'"
    assert outs[1]["content"]["transient"] == {"display_id": "progress"}
    assert outs[2]["content"]["data"]["text/html"] == "<b>raw</b>"


def test_clear_output(shared: BlockingKernelClient) -> None:
    reply, seen = run(shared, "print('gone'); clear_output(wait=True); print('kept')")
    assert reply["content"]["status"] == "ok"
    outs = outputs(seen)
    kinds = [m["msg_type"] for m in outs]
    assert "clear_output" in kinds
    clear = kinds.index("clear_output")
    assert outs[clear]["content"] == {"wait": True}
    assert stream_text(outs[:clear]) == "gone\n" and stream_text(outs[clear:]) == "kept\n"


def test_kernel_info_and_comm_info(shared: BlockingKernelClient) -> None:
    msg_id = shared.kernel_info()
    info = shell_reply(shared, msg_id)["content"]
    assert info["status"] == "ok" and info["implementation"] == "ipytui"
    assert info["language_info"]["name"] == "python"
    assert info["protocol_version"].startswith("5.")
    assert "ipytui" in info["banner"]
    assert info["help_links"]
    msg_id = shared.comm_info()
    reply = shell_reply(shared, msg_id)
    assert reply["msg_type"] == "comm_info_reply"
    assert reply["content"]["status"] == "ok"
    assert isinstance(reply["content"]["comms"], dict)


# -- stdin --------------------------------------------------------------------
def test_input_and_getpass_round_trip(shared: BlockingKernelClient) -> None:
    asked: list[tuple[str, bool]] = []

    def answer(msg: dict[str, Any]) -> None:
        content = msg["content"]
        asked.append((content["prompt"], content["password"]))
        shared.input("s3cret" if content["password"] else "world")

    code = ("import getpass\nname = input('name? ')\npw = getpass.getpass('pw: ')\n"
            "print(name.upper(), pw[::-1])")
    reply, seen = run(shared, code, allow_stdin=True, stdin_hook=answer)
    assert reply["content"]["status"] == "ok"
    assert asked == [("name? ", False), ("pw: ", True)]
    assert stream_text(seen) == "WORLD terc3s\n"


def test_input_without_allow_stdin_is_a_clear_error(shared: BlockingKernelClient) -> None:
    reply, _ = run(shared, "input('never asked? ')", allow_stdin=False)
    assert reply["content"]["status"] == "error"
    assert "allow_stdin" in reply["content"]["evalue"]


# -- output capture -----------------------------------------------------------
def test_fd_level_writes_are_captured(shared: BlockingKernelClient) -> None:
    code = ("import os, ctypes\n"
            "os.write(1, b'fd-out\\n')\n"
            "os.write(2, b'fd-err\\n')\n"
            "libc = ctypes.CDLL(None)\n"
            "libc.printf(b'from printf %d\\n', 42)\n"
            "libc.fflush(None)")
    reply, seen = run(shared, code)
    assert reply["content"]["status"] == "ok"
    out = stream_text(seen, "stdout")
    assert "fd-out\n" in out and "from printf 42\n" in out
    assert "fd-err\n" in stream_text(seen, "stderr")


def test_thread_output_is_attributed_to_the_cell(shared: BlockingKernelClient) -> None:
    code = ("import threading\n"
            "def work():\n"
            "    for i in range(3):\n"
            "        print('thread', i)\n"
            "t = threading.Thread(target=work)\n"
            "t.start(); t.join()")
    reply, seen = run(shared, code)
    assert reply["content"]["status"] == "ok"
    # run() only keeps messages whose parent is this cell's request.
    assert stream_text(seen) == "thread 0\nthread 1\nthread 2\n"


def test_big_print_arrives_complete_in_few_messages(shared: BlockingKernelClient) -> None:
    reply, seen = run(shared, "for i in range(20000):\n    print(i)")
    assert reply["content"]["status"] == "ok"
    streams = [m for m in seen if m["msg_type"] == "stream"]
    assert stream_text(seen) == "".join(f"{i}\n" for i in range(20000))
    assert len(streams) <= 200, f"{len(streams)} stream messages for 20000 prints"
    assert seen[-1]["msg_type"] == "status"  # all of it came before idle


# -- stop_on_error ------------------------------------------------------------
def test_stop_on_error_aborts_queued_executes(shared: BlockingKernelClient, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    first = shared.execute(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\n"
        "raise ValueError('first fails')")
    second = shared.execute("queued_ran = True")
    # The worker answers is_complete in arrival order, after it queued `second`.
    probe = shared.is_complete("1")
    assert shell_reply(shared, probe)["content"]["status"] == "complete"
    gate.touch()
    r1 = shell_reply(shared, first)
    r2 = shell_reply(shared, second)
    assert r1["content"]["status"] == "error" and r1["content"]["ename"] == "ValueError"
    assert r2["content"]["status"] == "aborted"
    reply, seen = run(shared, "'queued_ran' in globals()")
    assert [m for m in seen if m["msg_type"] == "execute_result"][0]["content"]["data"][
        "text/plain"] == "False"


# -- interrupt ----------------------------------------------------------------
def _start_sleep(kc: BlockingKernelClient) -> str:
    """Run a 60 s sleep; return once the cell is surely inside it."""
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    iopub_until(kc, lambda m: m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "stream" and "sleeping" in m["content"]["text"])
    return msg_id


def _assert_interrupted(kc: BlockingKernelClient, msg_id: str) -> None:
    reply = shell_reply(kc, msg_id, timeout=20)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    again, seen = run(kc, "'still here'")
    assert again["content"]["status"] == "ok"


def test_interrupt_by_signal(fresh) -> None:
    km, kc = fresh("ipytui")
    assert km.kernel_spec.interrupt_mode == "signal"
    msg_id = _start_sleep(kc)
    km.interrupt_kernel()
    _assert_interrupted(kc, msg_id)
    km.interrupt_kernel()  # SIGINT while idle is harmless
    reply, _ = run(kc, "1 + 1")
    assert reply["content"]["status"] == "ok"


def test_interrupt_by_message(fresh) -> None:
    km, kc = fresh("ipytui-msg")
    assert km.kernel_spec.interrupt_mode == "message"
    msg_id = _start_sleep(kc)
    km.interrupt_kernel()  # the manager sends interrupt_request on control
    _assert_interrupted(kc, msg_id)
    # And a client's own interrupt_request, answered on control.
    msg_id = _start_sleep(kc)
    request = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(request)
    reply = kc.get_control_msg(timeout=TIMEOUT)
    assert reply["msg_type"] == "interrupt_reply"
    assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
    assert reply["content"]["status"] == "ok"
    _assert_interrupted(kc, msg_id)


# -- lifecycle ----------------------------------------------------------------
def _pids(kc: BlockingKernelClient) -> tuple[int, int]:
    msg_id = kc.kernel_info()
    info = shell_reply(kc, msg_id)["content"]["ipytui"]
    return info["pid"], info["worker_pid"]


def test_shutdown_ends_every_process(fresh) -> None:
    km, kc = fresh()
    supervisor, worker = _pids(kc)
    assert supervisor == km.provisioner.pid
    run(kc, "x = 1")  # a successful cell: a snapshot process may exist too
    family = [psutil.Process(supervisor), *psutil.Process(supervisor).children(recursive=True)]
    assert worker in {p.pid for p in family}
    msg_id = kc.shutdown()
    reply = kc.get_control_msg(timeout=TIMEOUT)
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"] == {"status": "ok", "restart": False}
    # It exits by itself, cleanly, without the manager having to kill it.
    assert km.provisioner.process.wait(timeout=TIMEOUT) == 0
    _, alive = psutil.wait_procs(family, timeout=TIMEOUT)
    assert not alive, f"left running: {alive}"
    km.shutdown_kernel()  # the manager's own bookkeeping; the process is gone already
    assert not km.is_alive()


def test_manager_shutdown(fresh) -> None:
    km, kc = fresh()
    supervisor, worker = _pids(kc)
    family = [psutil.Process(supervisor), *psutil.Process(supervisor).children(recursive=True)]
    km.shutdown_kernel()
    assert not km.is_alive()
    _, alive = psutil.wait_procs(family, timeout=TIMEOUT)
    assert not alive, f"left running: {alive}"


def test_shutdown_request_with_restart_replaces_the_worker_in_place(start_kernel) -> None:
    """A kernel started without a manager (as ipytui does) restarts in place:
    same supervisor, same ports, a fresh namespace."""
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    supervisor, worker = _pids(kc)
    run(kc, "state = 41")
    msg_id = kc.shutdown(restart=True)
    reply = kc.get_control_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"] == {"status": "ok", "restart": True}
    kc.wait_for_ready(timeout=TIMEOUT)
    new_supervisor, new_worker = _pids(kc)
    assert new_supervisor == supervisor and new_worker != worker
    reply, _ = run(kc, "state")
    assert reply["content"]["ename"] == "NameError"
    assert proc.poll() is None
    kc.stop_channels()


def test_restart_gives_a_fresh_namespace(fresh) -> None:
    """Under a kernel manager (the kernelspec says --exit-on-restart) the
    supervisor exits on restart and the manager starts a new one."""
    km, kc = fresh()
    run(kc, "state = 41")
    old_pid = km.provisioner.process.pid
    km.restart_kernel()
    assert km.provisioner.process.pid != old_pid
    kc.wait_for_ready(timeout=TIMEOUT)
    reply, seen = run(kc, "state")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "NameError"
    reply, seen = run(kc, "6 * 7")
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["execution_count"] == 2
