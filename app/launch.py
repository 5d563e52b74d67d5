"""Starting a local kernel that outlives the UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0
POLL_SECONDS = 0.02


def start_kernel(connection_file: str | os.PathLike[str] | None = None, *, wait: float = START_TIMEOUT) -> Path:
    """Spawn ``python -m ipytui.kernel -f FILE`` detached; return the connection file
    once the kernel listens."""
    return spawn_kernel(connection_file).wait(wait)


def spawn_kernel(connection_file: str | os.PathLike[str] | None = None, *,
                 cull_after: float | None = None, cluster: str | None = None) -> KernelLaunch:
    """Spawn ``python -m ipytui.kernel -f FILE`` detached, without waiting for it.

    The kernel runs in its own session (no controlling terminal, no signals
    from ours), so quitting or killing the UI leaves it running. The file is
    written up front so its ports and key are ours to choose; the kernel
    removes it when it shuts down, whoever asks for that. ``cluster``: the
    kernel's ``--cluster`` (new:N, or a client connection file).
    """
    from ipytui.kernel.protocol.connection import new_connection_info, write_connection_file

    path = Path(connection_file) if connection_file else None
    path = write_connection_file(new_connection_info(), path)
    argv = [sys.executable, "-m", "ipytui.kernel", "-f", str(path), "--owns-connection-file"]
    if cull_after is not None:
        argv += ["--cull-idle-after", str(cull_after)]
    if cluster is not None:
        argv += ["--cluster", cluster]
    return _spawn(argv, path)


class KernelSpecError(RuntimeError):
    """No such kernelspec, or no jupyter_client to look it up with."""


def kernelspec_argv(name: str, connection_file: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the installed Jupyter kernelspec ``name``.

    Placeholders are filled in as jupyter_client does. ``--exit-on-restart``
    (in ipytui's own spec) is dropped: it is for managers that restart the
    process themselves, and this kernel must outlive the UI and restart in place.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        raise KernelSpecError("--kernel needs jupyter_client (pip install jupyter_client)") from None
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise KernelSpecError(f"no kernelspec named {name!r} (installed: {known})") from None
    fields = {"connection_file": str(connection_file), "resource_dir": spec.resource_dir,
              "prefix": sys.prefix}
    argv = [arg.format(**fields) if "{" in arg else arg for arg in spec.argv
            if arg != "--exit-on-restart"]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv, dict(spec.env or {})


def provisioner_name(name: str) -> str | None:
    """The kernel provisioner kernelspec ``name`` asks for (None: the default, local)."""
    from jupyter_client.kernelspec import KernelSpecManager

    meta = KernelSpecManager().get_kernel_spec(name).metadata or {}
    provisioner = meta.get("kernel_provisioner")
    return provisioner.get("provisioner_name") if isinstance(provisioner, dict) else None


def start_kernelspec(name: str, connection_file: str | os.PathLike[str] | None = None, *,
                     wait: float = START_TIMEOUT) -> Path:
    """Start the installed Jupyter kernel ``name`` detached on a new connection file."""
    import secrets

    from ipytui.kernel.protocol.connection import (
        jupyter_runtime_dir,
        new_connection_info,
        write_connection_file,
    )

    path = Path(connection_file) if connection_file else (
        jupyter_runtime_dir() / f"kernel-{name}-{secrets.token_hex(6)}.json")
    argv, env = kernelspec_argv(name, path)  # says so if there is no such spec
    if provisioner_name(name) not in (None, "local-provisioner"):
        # The provisioner places the kernel (maybe on another host) and writes the file.
        keeper = [sys.executable, "-m", "ipytui.kernel.provision.keeper", name, str(path)]
        return _spawn(keeper, path).wait(wait)
    write_connection_file(new_connection_info(kernel_name=name), path)
    return _spawn(argv, path, env={**os.environ, **env}).wait(wait)


@dataclass
class KernelLaunch:
    """A kernel process just spawned: it may not listen yet."""

    path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def wait(self, timeout: float = START_TIMEOUT) -> Path:
        """Block until the kernel listens (or exited: RuntimeError); the connection file."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and not _ports_bound(self.path):
            # The client itself waits for kernel_info, so an early return is harmless.
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        if self.process.poll() is not None:
            raise RuntimeError(
                f"kernel exited with status {self.process.returncode}; see {self.log_path}"
            )
        return self.path


def _spawn(argv: list[str], path: Path, *, env: dict[str, str] | None = None) -> KernelLaunch:
    from ipytui.kernel.protocol.paths import data_dir

    log_path = data_dir() / f"{path.stem}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    return KernelLaunch(path, process, log_path)


def _ports_bound(path: Path) -> bool:
    import socket

    from ipytui.kernel.protocol.connection import ConnectionError_, read_connection_file

    try:
        info = read_connection_file(path)
    except ConnectionError_:  # a provisioner's keeper has not written it (whole) yet
        return False
    if info.transport != "tcp":
        return True
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((info.ip if info.ip not in ("0.0.0.0", "*") else "127.0.0.1", info.shell_port)) == 0
