"""Starting a local kernel that outlives the UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 30.0


def start_kernel(connection_file: str | os.PathLike[str] | None = None, *, wait: float = START_TIMEOUT) -> Path:
    """Spawn ``python -m ipytui.kernel -f FILE`` detached; return the connection file.

    The kernel runs in its own session (no controlling terminal, no signals
    from ours), so quitting or killing the UI leaves it running. The file is
    written up front so its ports and key are ours to choose.
    """
    from ipytui.kernel.connection import new_connection_info, write_connection_file
    from ipytui.kernel.paths import data_dir

    path = Path(connection_file) if connection_file else None
    path = write_connection_file(new_connection_info(), path)
    log_path = data_dir() / f"{path.stem}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ipytui.kernel", "-f", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and process.poll() is None:
        # The kernel is ready to be connected to once its ports are bound; the
        # client itself waits for kernel_info, so an early return is harmless.
        if _ports_bound(path):
            break
        time.sleep(0.05)
    if process.poll() is not None:
        raise RuntimeError(f"kernel exited with status {process.returncode}; see {log_path}")
    return path


def _ports_bound(path: Path) -> bool:
    import socket

    from ipytui.kernel.connection import read_connection_file

    info = read_connection_file(path)
    if info.transport != "tcp":
        return True
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((info.ip if info.ip not in ("0.0.0.0", "*") else "127.0.0.1", info.shell_port)) == 0
