"""The remote end of ``ipytui-ssh``: ``python -m ipytui.kernel.provision.launcher``.

Run by ssh on the kernel's host. Reads one ``LaunchRequest`` line from stdin,
applies the kernelspec's environment, picks five free ports on the kernel's
address, writes the connection file (0600, atomically) into this host's
Jupyter runtime dir, answers with one ``LaunchReply`` line on stdout and then
*becomes* the kernel (exec, same pid), its output going to a log file in the
data dir. The ssh session stays open while the kernel lives, so the
provisioner's ssh process is the kernel's liveness. Any bad input gets an
``{"error": ...}`` line and exit status 2 with nothing left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionError_,
    ConnectionInfo,
    free_tcp_ports,
    write_connection_file,
)
from ipytui.kernel.protocol.paths import data_dir, jupyter_runtime_dir
from ipytui.kernel.provision.handshake import (
    MAX_LINE,
    HandshakeError,
    LaunchReply,
    LaunchRequest,
    error_line,
)

PLACEHOLDER = "{connection_file}"


def prepare(request: LaunchRequest) -> tuple[list[str], LaunchReply]:
    """Write the connection file; the argv to exec and the reply. Raises
    HandshakeError/ConnectionError_/OSError with nothing left on disk."""
    os.environ.update(request.env)  # before any path is computed: the spec may move them
    info = ConnectionInfo.from_dict(request.connection)
    if info.transport != "tcp":
        raise HandshakeError("a remote kernel needs the tcp transport")
    if shutil.which(request.argv[0]) is None:
        raise HandshakeError(f"no program {request.argv[0]!r} on this host")
    if not all(info.port(ch) for ch in CHANNELS):
        for channel, port in zip(CHANNELS, free_tcp_ports(info.ip, len(CHANNELS)), strict=True):
            setattr(info, f"{channel}_port", port)
    path = jupyter_runtime_dir() / f"kernel-{request.kernel_id}.json"
    log = data_dir() / f"kernel-{request.kernel_id}.log"
    write_connection_file(info, path)
    argv = [arg.replace(PLACEHOLDER, str(path)) for arg in request.argv]
    if "ipytui.kernel" in argv:  # our kernel removes the file when it ends
        argv.append("--owns-connection-file")
    ports = {f"{ch}_port": info.port(ch) for ch in CHANNELS}
    return argv, LaunchReply(os.getpid(), ports, str(path), str(log))


def become_kernel(argv: list[str], log_path: str) -> None:
    """Exec the kernel with stdin from /dev/null and stdout/stderr in the log."""
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    # Its own process group, whatever started the shell; a group leader already
    # (sshd's shell exec'd us) cannot, and needs not.
    with contextlib.suppress(OSError):
        os.setsid()
    os.execvp(argv[0], argv)


def main() -> int:
    line = sys.stdin.buffer.readline(MAX_LINE + 1)
    try:
        request = LaunchRequest.decode(line)
        argv, reply = prepare(request)
    except (HandshakeError, ConnectionError_, OSError) as exc:
        sys.stdout.buffer.write(error_line(str(exc)))
        sys.stdout.flush()
        return 2
    try:
        sys.stdout.buffer.write(reply.encode())
        sys.stdout.flush()
        become_kernel(argv, reply.log)
    except OSError as exc:  # exec failed or the provisioner went away: undo the file
        Path(reply.connection_file).unlink(missing_ok=True)
        print(f"ipytui launcher: {exc}", file=sys.stderr)
        return 1
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
