"""The launch handshake of a kernel placed over ssh: one JSON line each way.

The provisioner writes a ``LaunchRequest`` to the launcher's stdin (so the
HMAC and Curve keys never appear on a command line); the launcher answers on
its stdout with a ``LaunchReply`` (or ``{"error": ...}``) once the connection
file is written on the remote host, then becomes the kernel. Pure: bytes in,
objects out.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

MAX_LINE = 1 << 20  # a request holds argv, env and a connection file: far below this
KERNEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # it names a file on the remote host
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class HandshakeError(ValueError):
    """A line that is no valid request or reply; the text says what is wrong."""


def _load(line: bytes, what: str) -> dict[str, Any]:
    if not line.strip():
        raise HandshakeError(f"no {what} (the other side ended first)")
    if len(line) > MAX_LINE:
        raise HandshakeError(f"the {what} is longer than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise HandshakeError(f"the {what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HandshakeError(f"the {what} is not a JSON object")
    return data


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HandshakeError(f"{what} must be a list of strings")
    return list(value)


@dataclass
class LaunchRequest:
    """What the launcher needs: the kernel's argv (with ``{connection_file}``),
    the kernelspec's environment, the connection info (ports 0: the launcher
    picks free ones on its host) and the kernel id (names the remote files)."""

    argv: list[str]
    env: dict[str, str]
    connection: dict[str, Any]
    kernel_id: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> LaunchRequest:
        data = _load(line, "launch request")
        argv = _strings(data.get("argv"), "argv")
        if not argv:
            raise HandshakeError("argv is empty")
        env = data.get("env")
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise HandshakeError("env must map strings to strings")
        connection = data.get("connection")
        if not isinstance(connection, dict):
            raise HandshakeError("connection must be a JSON object")
        kernel_id = data.get("kernel_id")
        if not isinstance(kernel_id, str) or not KERNEL_ID.match(kernel_id):
            raise HandshakeError("kernel_id must be 1-64 letters, digits, '-' or '_'")
        return cls(argv, env, connection, kernel_id)


@dataclass
class LaunchReply:
    """The started kernel: its pid (the launcher exec'd into it), the ports it
    will bind, where its connection file and log are on the remote host."""

    pid: int
    ports: dict[str, int]
    connection_file: str
    log: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> LaunchReply:
        """The reply, or HandshakeError with the launcher's own error text."""
        data = _load(line, "launch reply")
        if "error" in data:
            raise HandshakeError(f"the launcher refused: {data['error']}")
        pid, ports = data.get("pid"), data.get("ports")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            raise HandshakeError("pid must be a process id")
        if (
            not isinstance(ports, dict)
            or set(ports) != set(PORT_NAMES)
            or not all(isinstance(p, int) and 0 < p < 65536 for p in ports.values())
        ):
            raise HandshakeError(f"ports must give {', '.join(PORT_NAMES)} as TCP ports")
        files = [data.get("connection_file"), data.get("log")]
        if not all(isinstance(f, str) and f for f in files):
            raise HandshakeError("connection_file and log must be paths")
        return cls(pid, dict(ports), str(files[0]), str(files[1]))


def error_line(text: str) -> bytes:
    """The launcher's refusal, for the provisioner to raise with."""
    return json.dumps({"error": text}).encode() + b"\n"
