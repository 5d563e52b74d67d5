"""Two hosts: the kernel in one Linux network namespace, the client in another.

The namespaces are joined by a veth pair this test makes, with TEST-NET-1
addresses (192.0.2.0/24, never routed) that exist only inside them. The
kernel serves ``--remote`` (CurveZMQ and the allow-list); the client uses
the share file and its own keypair, exactly as a remote user would.
Skipped where the machine does not let us make namespaces (needs root or
CAP_NET_ADMIN, and iproute2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_support import ip, kill_all_in

pytestmark = pytest.mark.timeout(120)

KERNEL_ADDR, CLIENT_ADDR = "192.0.2.1", "192.0.2.2"

CLIENT_SCRIPT = """
import asyncio, sys
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.protocol.credentials import client_info

async def main():
    async with KernelClient(client_info(sys.argv[1])) as client:
        try:
            await client.wait_ready(timeout=float(sys.argv[2]))
        except TimeoutError:
            print("refused")
            return
        result = await client.execute(sys.argv[3], timeout=30)
        print(result.status, result.text, end="")

asyncio.run(main())
"""


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair; removed (with all in them) at teardown."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    tag = f"{os.getpid() % 100000}"
    kernel_ns, client_ns = f"ipytui-k{tag}", f"ipytui-c{tag}"
    veth_k, veth_c = f"ipyk{tag}", f"ipyc{tag}"
    made: list[str] = []
    try:
        for ns in (kernel_ns, client_ns):
            probe = ip("netns", "add", ns, check=False)
            if probe.returncode:
                pytest.skip(f"cannot make network namespaces here: {probe.stderr.strip()}")
            made.append(ns)
        steps = [
            ("link", "add", veth_k, "type", "veth", "peer", "name", veth_c),
            ("link", "set", veth_k, "netns", kernel_ns),
            ("link", "set", veth_c, "netns", client_ns),
            ("-n", kernel_ns, "addr", "add", f"{KERNEL_ADDR}/24", "dev", veth_k),
            ("-n", client_ns, "addr", "add", f"{CLIENT_ADDR}/24", "dev", veth_c),
            ("-n", kernel_ns, "link", "set", veth_k, "up"),
            ("-n", client_ns, "link", "set", veth_c, "up"),
            ("-n", kernel_ns, "link", "set", "lo", "up"),
            ("-n", client_ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = ip(*step, check=False)
            if result.returncode:
                pytest.skip(f"cannot wire the namespaces (ip {' '.join(step)}): {result.stderr.strip()}")
        yield kernel_ns, client_ns
    finally:
        for ns in made:
            kill_all_in(ns)
            ip("netns", "del", ns, check=False)
        ip("link", "del", veth_k, check=False)  # only if it never left the root namespace


def _env(tmp_path: Path, who: str) -> dict[str, str]:
    root = tmp_path / who
    return {**os.environ, "IPYTUI_CONFIG_DIR": str(root / "config"),
            "IPYTUI_DATA_DIR": str(root / "data"), "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "IPYTHONDIR": str(root / "ipython"), "PYTHONUNBUFFERED": "1"}


def _run_client(ns: str, env: dict[str, str], share: Path, code: str, wait: float) -> str:
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT_SCRIPT,
                             str(share), str(wait), code],
                            env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cell_over_curve_between_two_network_namespaces(two_hosts: tuple[str, str],
                                                        tmp_path: Path) -> None:
    kernel_ns, client_ns = two_hosts
    kernel_env, alice_env, eve_env = (_env(tmp_path, who) for who in ("kernel", "alice", "eve"))
    for env in (alice_env, eve_env):
        subprocess.run([sys.executable, "-m", "ipytui.kernel.tools.keys", "new"], env=env, check=True,
                       capture_output=True)
    alice_key = Path(alice_env["IPYTUI_CONFIG_DIR"]) / "client.key"
    subprocess.run([sys.executable, "-m", "ipytui.kernel.tools.keys", "authorize", str(alice_key),
                    "--name", "alice"], env=kernel_env, check=True, capture_output=True)

    share = tmp_path / "share.json"
    log = open(tmp_path / "kernel.log", "wb")  # noqa: SIM115 - handed to the process
    kernel = subprocess.Popen(
        ["ip", "netns", "exec", kernel_ns, sys.executable, "-m", "ipytui.kernel", "--debug", "--remote",
         "--ip", KERNEL_ADDR, "--share-file", str(share)],
        env=kernel_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while not share.exists():  # written once the public sockets are bound
            assert kernel.poll() is None, (tmp_path / "kernel.log").read_text()
            assert time.monotonic() < deadline, "the kernel did not start"
            time.sleep(0.05)
        code = "import socket; print(6 * 7, socket.gethostname() != '')"
        assert _run_client(client_ns, alice_env, share, code, 30) == "ok 42 True\n"
        assert _run_client(client_ns, eve_env, share, code, 3) == "refused\n"
        assert _run_client(client_ns, alice_env, share, "print('again')", 30) == "ok again\n"
        assert "is not on the allow-list" in (tmp_path / "kernel.log").read_text()
    finally:
        kernel.kill()
        kernel.wait(10)
