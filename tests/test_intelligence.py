"""The IPython conveniences over the wire, against a live ipytui kernel.

Completion, inspection and is_complete are answered while a cell runs; the
journal gives history across kernel processes; ``!`` and magics work live.
"""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import IPYTUI_ARGV

TIMEOUT = 30
LONG_CELL = "import time\nfor _ in range(600):\n    time.sleep(0.05)"


async def _running(client: Any) -> asyncio.Task[Any]:
    """Start a long cell and return once the kernel has begun running it."""
    started = asyncio.Event()

    def watch(msg: Any) -> None:
        if msg.msg_type == "execute_input":
            started.set()

    task = asyncio.create_task(client.execute(LONG_CELL, on_iopub=watch, timeout=120))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    return task


async def test_requests_are_answered_while_a_cell_runs(start_kernel: Any, make_client: Any) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    await client.execute("import os\nconfig = {'key1': 1, 'key2': 2}")
    cell = await _running(client)
    code = "config['ke"
    reply = await client.complete(code, timeout=TIMEOUT)
    assert not cell.done(), "the complete_reply must come before the execute_reply"
    start, end = reply["cursor_start"], reply["cursor_end"]
    assert sorted(code[:start] + m + code[end:] for m in reply["matches"]) == [
        "config['key1']", "config['key2']"]
    reply = await client.complete("os.pa", timeout=TIMEOUT)
    assert "os.path" in reply["matches"] or "path" in reply["matches"]
    reply = await client.inspect("os", 2, timeout=TIMEOUT)
    assert reply["found"] and "module" in reply["data"]["text/plain"]
    reply = await client.is_complete("for x in y:", timeout=TIMEOUT)
    assert reply["status"] == "incomplete"
    assert not cell.done()
    await client.interrupt()
    result = await cell
    assert result.error is not None and result.error[0] == "KeyboardInterrupt"


async def test_completion_types_signatures_and_paths(start_kernel: Any, make_client: Any,
                                                     tmp_path: Any) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    (tmp_path / "data_file.csv").write_text("a,b\n")
    await client.execute(f"import os\nos.chdir({str(tmp_path)!r})\n"
                         "def scale(x, factor=2):\n    return x * factor")
    reply = await client.complete("sca")
    assert reply["matches"] == ["scale"]
    meta = reply["metadata"]["_jupyter_types_experimental"][0]
    assert meta["type"] == "function" and meta["signature"].startswith("(x, factor=2)") or \
        "factor=2" in meta["signature"]
    code = 'open("data_f'
    reply = await client.complete(code)
    assert any(m.endswith("data_file.csv") for m in reply["matches"])
    start, end = reply["cursor_start"], reply["cursor_end"]
    assert (code[:start] + reply["matches"][0] + code[end:]).endswith('data_file.csv')


async def test_history_spans_kernel_processes(start_kernel: Any, make_client: Any) -> None:
    first_info, first = start_kernel(IPYTUI_ARGV)
    client = await make_client(first_info)
    await client.execute("alpha_from_first_kernel = 1")
    await client.shutdown()
    await client.stop()
    first.wait(TIMEOUT)
    second_info, _ = start_kernel(IPYTUI_ARGV)
    other = await make_client(second_info)
    reply = await other.history(hist_access_type="search", pattern="alpha_from*", n=5)
    assert [entry[2] for entry in reply["history"]] == ["alpha_from_first_kernel = 1"]
    result = await other.execute("%history -g alpha_from")
    assert "alpha_from_first_kernel = 1" in result.text


async def test_shell_commands_stream_and_capture(start_kernel: Any, make_client: Any) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    result = await client.execute("!echo one; echo two")
    assert result.text.splitlines()[-2:] == ["one", "two"]
    result = await client.execute("lines = !printf 'a\\nb\\n'\nlines")
    assert result.data is not None and "['a', 'b']" in result.data["text/plain"]
    result = await client.execute("%tiemit 1")
    assert result.status == "error"
    assert "%timeit" in result.error[1]
