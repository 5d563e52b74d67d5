"""Connection files in Jupyter's format: make, write (0600), read, find.

``ipytui --existing`` and ``jupyter console --existing`` can open each
other's files because the format and the default directory are Jupyter's.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.atomic import write_atomic
from ipytui.kernel.protocol.paths import jupyter_runtime_dir

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
# The documented order for --port-base N: shell, iopub, stdin, control, hb.
PORT_BASE_ORDER = CHANNELS


class ConnectionError_(ValueError):
    """A connection file that cannot be used; the text says what is wrong."""


@dataclass
class ConnectionInfo:
    """The contents of a Jupyter connection file."""

    shell_port: int = 0
    iopub_port: int = 0
    stdin_port: int = 0
    control_port: int = 0
    hb_port: int = 0
    ip: str = "127.0.0.1"
    key: str = ""
    transport: str = "tcp"
    signature_scheme: str = "hmac-sha256"
    kernel_name: str = "ipytui"
    curve_publickey: str | None = None
    curve_secretkey: str | None = None
    curve_serverkey: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def port(self, channel: str) -> int:
        return int(getattr(self, f"{channel}_port"))

    def url(self, channel: str) -> str:
        """The endpoint a client connects to for one channel."""
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{self.port(channel)}"
        host = self.ip
        if host in ("0.0.0.0", "*", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"tcp://{host}:{self.port(channel)}"

    def bind_url(self, channel: str) -> str:
        """The endpoint the kernel binds for one channel."""
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{self.port(channel)}"
        host = self.ip
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"tcp://{host}:{self.port(channel)}"

    @property
    def is_loopback(self) -> bool:
        return self.transport == "ipc" or self.ip in ("127.0.0.1", "localhost", "::1") or self.ip.startswith("127.")

    @property
    def encrypted(self) -> bool:
        return bool(self.curve_publickey or self.curve_serverkey)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data = {k: v for k, v in data.items() if v is not None}
        data.update(extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConnectionInfo:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            info = cls(**kwargs, extra=extra)
            for ch in CHANNELS:
                int(getattr(info, f"{ch}_port"))
        except (TypeError, ValueError) as exc:
            raise ConnectionError_(f"bad connection info: {exc}") from None
        if info.transport not in ("tcp", "ipc"):
            raise ConnectionError_(f"unknown transport {info.transport!r}")
        return info


def new_key() -> str:
    """A fresh 256-bit HMAC key, hex encoded."""
    return _token_hex(32)


def free_tcp_ports(ip: str, count: int) -> list[int]:
    """Ports the OS hands out as free; all sockets held until every port is picked."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip if ip not in ("*", "") else "0.0.0.0", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def new_connection_info(
    ip: str = "127.0.0.1",
    transport: str = "tcp",
    port_base: int | None = None,
    kernel_name: str = "ipytui",
    key: str | None = None,
) -> ConnectionInfo:
    """Connection info with a fresh key and free (or port_base..+4) ports."""
    info = ConnectionInfo(ip=ip, transport=transport, kernel_name=kernel_name)
    info.key = new_key() if key is None else key
    if transport == "ipc":
        ports = list(range(1, 6))
        if ip in ("127.0.0.1", ""):
            info.ip = str(jupyter_runtime_dir() / f"ipytui-{_token_hex(4)}")
    elif port_base is not None:
        if not 1 <= port_base <= 65535 - 4:
            raise ConnectionError_(f"--port-base {port_base} leaves no room for 5 ports")
        ports = list(range(port_base, port_base + 5))
    else:
        ports = free_tcp_ports(ip, 5)
    for channel, port in zip(CHANNELS, ports, strict=True):
        setattr(info, f"{channel}_port", port)
    return info


def write_connection_file(info: ConnectionInfo, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the file atomically with mode 0600; default name kernel-<random>.json."""
    if path is None:
        path = jupyter_runtime_dir() / f"kernel-ipytui-{_token_hex(6)}.json"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(info.to_dict(), indent=1).encode()
    write_atomic(path, lambda f: f.write(data))
    os.chmod(path, 0o600)
    return path


def read_connection_file(path: str | os.PathLike[str]) -> ConnectionInfo:
    """Parse a connection file, or raise ConnectionError_ with a clear reason."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConnectionError_(f"no connection file at {path}") from None
    except (OSError, ValueError) as exc:
        raise ConnectionError_(f"cannot read connection file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConnectionError_(f"connection file {path} does not hold a JSON object")
    return ConnectionInfo.from_dict(data)


def find_connection_file(name: str | None = None) -> Path:
    """Resolve a path, a kernel id or a glob fragment; None means the newest file."""
    if name:
        p = Path(name).expanduser()
        if p.exists():
            return p
    runtime = jupyter_runtime_dir()
    pattern = f"*{name}*" if name else "kernel-*.json"
    matches = sorted(runtime.glob(pattern if pattern.endswith(".json") else pattern + ".json"),
                     key=lambda p: p.stat().st_mtime)
    if not matches:
        raise ConnectionError_(f"no connection file matches {name!r} in {runtime}")
    return matches[-1]


def _token_hex(nbytes: int) -> str:
    """What secrets.token_hex gives (os.urandom), without importing hmac and OpenSSL."""
    return os.urandom(nbytes).hex()
