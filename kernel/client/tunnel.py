"""SSH tunnels to a remote kernel with the system's ``ssh``: ``ipytui --existing FILE --ssh user@host``.

One ``ssh -N`` process forwards five local loopback ports to the kernel's
ports as seen from the SSH server; the connection info is rewritten to the
local ports. Curve and HMAC keep working through the tunnel unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionError_,
    ConnectionInfo,
    free_tcp_ports,
)

SSH_OPTIONS = ("-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
               "-o", "ServerAliveCountMax=3")
OPEN_TIMEOUT = 30.0


def parse_server(server: str) -> tuple[str, str | None]:
    """``[user@]host[:port]`` -> (``[user@]host``, port or None); refuses option-like text."""
    if not server or server.startswith("-") or any(c.isspace() or not c.isprintable() for c in server):
        raise ConnectionError_(f"not an ssh destination: {server!r}")
    host, port = server, None
    if server.count(":") == 1:
        host, port = server.split(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConnectionError_(f"bad ssh port in {server!r}")
    return host, port


def _remote_host(info: ConnectionInfo) -> str:
    host = info.ip
    if host in ("0.0.0.0", "*", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]" if ":" in host else host


def ssh_command(info: ConnectionInfo, server: str, local_ports: dict[str, int],
                ssh: str = "ssh") -> list[str]:
    """The ``ssh -N -L ...`` command forwarding each channel's local port to the kernel."""
    if info.transport != "tcp":
        raise ConnectionError_("only tcp kernels can be reached through ssh")
    host, port = parse_server(server)
    remote = _remote_host(info)
    cmd = [ssh, "-N", *SSH_OPTIONS]
    if port:
        cmd += ["-p", port]
    for channel in CHANNELS:
        cmd += ["-L", f"127.0.0.1:{local_ports[channel]}:{remote}:{info.port(channel)}"]
    return [*cmd, "--", host]


def tunnelled_info(info: ConnectionInfo, local_ports: dict[str, int]) -> ConnectionInfo:
    """A copy of ``info`` pointing at the local ends of the tunnel."""
    ports = {f"{ch}_port": local_ports[ch] for ch in CHANNELS}
    return dataclasses.replace(info, ip="127.0.0.1", extra=dict(info.extra), **ports)


@dataclass
class Tunnel:
    """A running ``ssh`` and the connection info that goes through it."""

    process: subprocess.Popen[bytes]
    info: ConnectionInfo
    log_path: Path

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_tunnel(info: ConnectionInfo, server: str, *, ssh: str = "ssh",
                timeout: float = OPEN_TIMEOUT) -> Tunnel:
    """Start ssh and wait until all five local ports accept connections.

    ssh may ask for a password or a host-key confirmation on the terminal
    first, so call this before the UI takes the screen.
    """
    local_ports = dict(zip(CHANNELS, free_tcp_ports("127.0.0.1", 5), strict=True))
    cmd = ssh_command(info, server, local_ports, ssh=ssh)
    log_fd, log_name = tempfile.mkstemp(prefix="ipytui-ssh-", suffix=".log")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log_fd, start_new_session=False)
    except OSError as exc:
        Path(log_name).unlink(missing_ok=True)
        raise ConnectionError_(f"cannot run {ssh}: {exc}") from None
    finally:
        os.close(log_fd)
    tunnel = Tunnel(proc, tunnelled_info(info, local_ports), Path(log_name))
    deadline = time.monotonic() + timeout
    while not all(_accepts(p) for p in local_ports.values()):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = Path(log_name).read_text(errors="replace").strip() or f"exit status {proc.poll()}"
            tunnel.close()
            raise ConnectionError_(f"ssh tunnel to {server} failed: {why}")
        time.sleep(0.1)
    return tunnel


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
