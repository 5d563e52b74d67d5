"""Interrupting a cell that prints without end: its output stops with it.

The cell floods stdout; once output flows the client sends interrupt_request.
The cell must end with KeyboardInterrupt, and once its reply and idle have
arrived, (almost) no more of its output may follow: what was buffered in the
worker is dropped at the interrupt, and the supervisor drops the rest still
on its way (saying so once, before the idle). A second cell is the fence: by
its idle everything the first one could still send has arrived. How fast the
output stops is measured in benchmarks/ (robust group), not here.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import IPYTUI_ARGV
from jupyter_client.blocking.client import BlockingKernelClient

pytestmark = pytest.mark.timeout(180)

T = 60.0
FLOOD = "i = 0\nwhile True:\n    print(str(i) + 'x' * 1000)\n    i += 1"
LATE_ALLOWED = 2  # stream messages of the cell after its idle


def messages_until_idle(kc: BlockingKernelClient, msg_id: str, seen: list[dict[str, Any]]) -> None:
    while True:
        msg = kc.get_iopub_msg(timeout=T)
        seen.append(msg)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return


def shell_reply(kc: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        reply = kc.get_shell_msg(timeout=T)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def test_interrupt_stops_a_printing_cell(start_kernel) -> None:
    info, _ = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=T)
        flood = kc.execute(FLOOD)
        streams = 0
        while streams < 20:  # output flows
            msg = kc.get_iopub_msg(timeout=T)
            streams += msg["parent_header"].get("msg_id") == flood and msg["msg_type"] == "stream"
        kc.session.send(kc.control_channel.socket, "interrupt_request", {})
        assert kc.get_control_msg(timeout=T)["content"]["status"] == "ok"
        seen: list[dict[str, Any]] = []
        messages_until_idle(kc, flood, seen)
        reply = shell_reply(kc, flood)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        fence = kc.execute("print('next')")
        after: list[dict[str, Any]] = []
        messages_until_idle(kc, fence, after)
        assert shell_reply(kc, fence)["status"] == "ok"
        late = [m for m in after if m["parent_header"].get("msg_id") == flood
                and m["msg_type"] == "stream"]
        assert len(late) <= LATE_ALLOWED, [m["content"]["text"][:40] for m in late]
        fence_out = "".join(m["content"]["text"] for m in after if m["msg_type"] == "stream"
                            and m["parent_header"].get("msg_id") == fence)
        assert fence_out == "next\n"
        notes = [m["content"]["text"] for m in seen
                 if m["msg_type"] == "stream" and m["content"]["text"].startswith("[ipytui]")]
        assert len(notes) <= 1  # told at most once, and before the idle
    finally:
        kc.stop_channels()


def test_an_interrupt_as_soon_as_the_cell_starts_is_not_lost(start_kernel) -> None:
    """Clients see execute_input a moment before the cell's code runs: an interrupt sent
    the instant it arrives must still end the cell (it used to be dropped, leaving the
    cell to sleep on)."""
    info, _ = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=T)
        for _ in range(5):
            cell = kc.execute("import time\ntime.sleep(120)")
            while True:
                msg = kc.get_iopub_msg(timeout=T)
                if msg["parent_header"].get("msg_id") == cell and msg["msg_type"] == "execute_input":
                    break
            kc.session.send(kc.control_channel.socket, "interrupt_request", {})
            assert kc.get_control_msg(timeout=T)["content"]["status"] == "ok"
            reply = shell_reply(kc, cell)  # within T, not after the 120 s sleep
            assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    finally:
        kc.stop_channels()
