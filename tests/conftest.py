"""Shared fixtures: start a real kernel process and connect KernelClients to it.

``start_kernel(argv_prefix)`` writes a fresh connection file into a tmp dir,
runs ``argv_prefix + [connection_file]``, waits until the process listens on
all five ports and returns ``(info, proc)``; every kernel it started is
killed at teardown. Free ports are picked before the kernel binds them, so
a concurrent test run can take one first: then the kernel dies on bind and
is started again with fresh ports. ``kernel`` is the same for the
command in ``kernel_argv`` (ipykernel by default); switch a test to ipytui's
kernel with ``@pytest.mark.parametrize("kernel_argv", [IPYTUI_ARGV], indirect=True)``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionInfo,
    new_connection_info,
    write_connection_file,
)

IPYKERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f"]
# --debug: the kernel logs to its stderr, which the tests keep in tmp_path/kernel-N.log.
IPYTUI_ARGV = [sys.executable, "-m", "ipytui.kernel", "--debug", "-f"]

KernelProcess = tuple[ConnectionInfo, subprocess.Popen[bytes]]
START_ATTEMPTS = 3
LISTEN_TIMEOUT = 20.0


@contextlib.contextmanager
def tmpfs_data_dir(tmp_path: Path, size: str) -> Iterator[Path]:
    """tmp_path/'data' (a kernel's IPYTUI_DATA_DIR) on a tmpfs of ``size``: a disk
    that fills up. Skips the test where no tmpfs can be mounted (not root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(data)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def isolate_cluster(mp: pytest.MonkeyPatch, root: Path) -> None:
    """A cluster's profiles, journals and runtime files under ``root``; its engines
    can import the test modules (functions defined there are sent by reference)."""
    here = str(Path(__file__).parent)
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    mp.setenv("IPYTHONDIR", str(root / "ipython"))
    mp.setenv("IPYTUI_DATA_DIR", str(root / "ipytui"))
    mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))


def wait_until(pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Await a condition (polling), or raise TimeoutError naming it: never sleep and hope."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state owned by pid or its children."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    ports: set[int] = set()
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports.update(c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN)
    return ports


def _wait_listening(proc: subprocess.Popen[bytes], info: ConnectionInfo) -> bool:
    """True once proc listens on every port of info; False if it exited first."""
    if info.transport != "tcp":
        return proc.poll() is None
    wanted = {info.port(ch) for ch in CHANNELS}
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if wanted <= _listening_ports(proc.pid):
            return True
        time.sleep(0.02)
    raise TimeoutError(f"kernel {proc.args} did not bind its ports in {LISTEN_TIMEOUT} s")


@pytest.fixture
def start_kernel(tmp_path: Path) -> Iterator[Callable[..., KernelProcess]]:
    """Factory: ``start_kernel(argv_prefix=IPYKERNEL_ARGV, **connection_kwargs)``."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv_prefix: list[str] | None = None, **connection_kwargs: Any) -> KernelProcess:
        for _ in range(START_ATTEMPTS):
            info, proc = launch(list(argv_prefix or IPYKERNEL_ARGV), connection_kwargs)
            if _wait_listening(proc, info):
                return info, proc
        raise RuntimeError(f"kernel exited {START_ATTEMPTS} times at startup; see {tmp_path}")

    def launch(argv_prefix: list[str], connection_kwargs: dict[str, Any]) -> KernelProcess:
        info = new_connection_info(**connection_kwargs)
        n = len(procs)
        path = write_connection_file(info, tmp_path / f"kernel-{n}.json")
        env = {
            **os.environ,
            "IPYTHONDIR": str(tmp_path / "ipython"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "IPYTUI_DATA_DIR": str(tmp_path / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        log = open(tmp_path / f"kernel-{n}.log", "wb")  # noqa: SIM115 - closed by the process
        proc = subprocess.Popen(
            [*argv_prefix, str(path)], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        procs.append(proc)
        return info, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def kernel_argv(request: pytest.FixtureRequest) -> list[str]:
    """The kernel command prefix; override with indirect parametrization."""
    return list(getattr(request, "param", IPYKERNEL_ARGV))


@pytest.fixture
def interrupt_by_signal(kernel_argv: list[str]) -> bool:
    """ipykernel's kernelspec says interrupt_mode 'signal'; ours takes interrupt_request."""
    return "ipykernel_launcher" in kernel_argv


@pytest.fixture
def kernel(start_kernel: Callable[..., KernelProcess], kernel_argv: list[str]) -> KernelProcess:
    return start_kernel(kernel_argv)


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Any]]:
    """Async factory: ``await make_client(info, **kwargs)`` -> started, ready client."""
    clients: list[KernelClient] = []

    async def make(info: ConnectionInfo, ready: bool = True, **kwargs: Any) -> KernelClient:
        client = KernelClient(info, **kwargs)
        clients.append(client)
        await client.start()
        if ready:
            await client.wait_ready(timeout=20)
        return client

    yield make
    for client in clients:
        await client.stop()


@pytest.fixture
def ipytui_kernel(tmp_path: Path) -> Iterator[Any]:
    """Our own kernel for the UI's Pilot tests, whatever UI_KERNEL_ARGV says (they need
    its crash handling and undo): a KernelProcess of test_ui_support, stopped after."""
    from test_ui_support import IPYTUI_KERNEL_ARGV, KernelProcess

    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    yield kernel
    kernel.stop()
