"""Client lists stay true under churn: 300 clients that connect, send one request and
vanish without a goodbye leave one listed client, the one still connected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq
from conftest import IPYTUI_ARGV, wait_until
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.session import Session

pytestmark = pytest.mark.timeout(180)

T = 60.0
CYCLES = 300


def listed_clients(lock: Path) -> int:
    return int(json.loads(lock.read_text())["clients"])


def test_abrupt_clients_leave_the_list(start_kernel, tmp_path: Path) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    kc = BlockingKernelClient()
    kc.load_connection_info(info.to_dict())
    kc.start_channels()
    ctx = zmq.Context()
    try:
        kc.wait_for_ready(timeout=T)
        msg_id = kc.kernel_info()
        reply = kc.get_shell_msg(timeout=T)
        assert reply["parent_header"]["msg_id"] == msg_id
        kernel_id = reply["content"]["ipytui"]["kernel_id"]
        lock = tmp_path / "data" / "locks" / f"{kernel_id}.lock"
        url = f"{info.transport}://{info.ip}:{info.port('shell')}"
        for i in range(CYCLES):
            session = Session(key=info.key.encode(), signature_scheme=info.signature_scheme)
            sock = ctx.socket(zmq.DEALER)
            sock.connect(url)
            session.send(sock, "kernel_info_request", {})
            if i % 2:  # half of them wait for their answer, half leave at once
                sock.poll(int(T * 1000))
            sock.close(linger=0 if i % 3 else 1000)
        kc.execute("pass")  # the one that stays is active at the end
        wait_until(lambda: listed_clients(lock) == 1, T, "one listed client")
        assert proc.poll() is None
    finally:
        kc.stop_channels()
        ctx.term()
