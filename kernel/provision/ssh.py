"""``ipytui-ssh``: a jupyter_client kernel provisioner that starts an ipytui
kernel on another host over ssh.

The kernelspec names it in ``metadata.kernel_provisioner`` with a ``config``
of ``host`` (ssh destination), ``ssh_args`` (extra ssh arguments: port,
identity, known-hosts file...) and ``kernel_ip`` (the address the kernel
binds there and clients connect to; default: the host part of ``host``).
One ssh session carries the launch handshake (see ``handshake``) and then
stays open while the kernel lives: its exit is the kernel's exit. Signals and
clean-up are short extra ssh commands. The HMAC key and, when the manager's
``transport_encryption`` asks for it, a Curve keypair made here travel in the
handshake over ssh's stdin, so the kernel's sockets are encrypted end to end.
"""

from __future__ import annotations

import asyncio
import collections
import shlex
import signal
import subprocess
import threading
from typing import Any

import zmq
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.provision.handshake import (
    PORT_NAMES,
    HandshakeError,
    LaunchReply,
    LaunchRequest,
)
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Float, List, Unicode

LAUNCHER = ("-m", "ipytui.kernel.provision.launcher")
COMMAND_TIMEOUT = 30.0  # one short ssh command (kill, rm)
STDERR_LINES = 40  # the tail of ssh's stderr kept for error messages


def ssh_argv(host: str, ssh_args: list[str], remote: list[str]) -> list[str]:
    """The local ssh command running ``remote`` (quoted for the remote shell) on host."""
    return ["ssh", "-T", "-o", "BatchMode=yes", *ssh_args, host, "--", shlex.join(remote)]


def host_address(destination: str) -> str:
    """``user@host`` -> ``host`` (ssh's own destination syntax)."""
    return destination.rpartition("@")[2]


class SSHProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """Start, watch, signal and clean up one ipytui kernel on a remote host."""

    host = Unicode(config=True, help="ssh destination of the kernel's host: [user@]host")
    ssh_args = List(
        Unicode(),
        config=True,
        help="extra ssh arguments, e.g. ['-p', '2222', '-i', '~/.ssh/id_ed25519']",
    )
    kernel_ip = Unicode(
        "", config=True, help="address the kernel binds on its host (default: the host)"
    )
    launch_timeout = Float(60.0, config=True, help="seconds the launcher may take to answer")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.process: subprocess.Popen[bytes] | None = None
        self.remote_pid: int | None = None
        self.remote_file: str | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._request: LaunchRequest | None = None
        self._drainer: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self.process is not None

    async def poll(self) -> int | None:
        """None while the ssh session (and so the kernel) lives, else its status."""
        return self.process.poll() if self.process else 0

    async def wait(self) -> int | None:
        if self.process is None:
            return 0
        while self.process.poll() is None:
            await asyncio.sleep(0.1)
        status = self.process.wait()
        self._close_pipes()
        self.process = None
        return status

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel process on its host (``kill`` run over ssh)."""
        if self.process is None or self.process.poll() is not None or self.remote_pid is None:
            return
        await self._remote(["kill", f"-{int(signum)}", str(self.remote_pid)])

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """End a session the kernel left open and remove the remote connection file
        (a kernel that exits cleanly removes it itself; a killed one cannot)."""
        if self.process is not None and self.process.poll() is None:
            await self.kill()
            self.process.kill()
            await self.wait()
        if self.remote_file:
            await self._remote(["rm", "-f", "--", self.remote_file])
            self.remote_file = None

    # -- launch -------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Decide the address and keys; the ports are picked on the remote host."""
        if not self.host:
            raise RuntimeError("ipytui-ssh: the kernelspec's provisioner config has no 'host'")
        km = self.parent
        policy = kwargs.pop("transport_encryption", None)
        if km is not None:
            if km.transport != "tcp":
                raise RuntimeError("ipytui-ssh: a remote kernel needs the tcp transport")
            km.ip = self.kernel_ip or host_address(self.host)
            self._provision_curve(km, policy)
        cmd = list(self.kernel_spec.argv) + list(kwargs.pop("extra_arguments", []))
        kwargs = await super().pre_launch(cmd=cmd, **kwargs)
        env = kwargs.get("env", {})
        # Only the kernelspec's own variables travel: this host's environment is not theirs.
        spec_env = {k: env.get(k, v) for k, v in (self.kernel_spec.env or {}).items()}
        connection = self._connection(km)
        self._request = LaunchRequest(cmd, spec_env, connection.to_dict(), self.kernel_id)
        return kwargs

    def _provision_curve(self, km: Any, policy: str | None) -> None:
        """A Curve keypair as jupyter_client's LocalProvisioner makes it, for the same policies."""
        policy = (
            km._transport_encryption_policy(policy)
            if hasattr(km, "_transport_encryption_policy")
            else "disabled"
        )
        wanted = policy == "required" or (
            policy == "auto" and km._kernel_supports_curve_encryption()
        )
        if wanted and km.curve_publickey is None:  # kept across restarts, as the key is
            km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()

    def _connection(self, km: Any) -> ConnectionInfo:
        """What the launcher gets. Ports 0 at the first start: it picks free ones on
        its host. A restart keeps the ports (and keys), so clients stay connected."""
        if km is None:
            raise RuntimeError("ipytui-ssh needs a kernel manager as its parent")
        info = ConnectionInfo(
            **{name: int(getattr(km, name) or 0) for name in PORT_NAMES},
            ip=km.ip,
            key=km.session.key.decode(),
            transport=km.transport,
            signature_scheme=km.session.signature_scheme,
            kernel_name=km.kernel_name or "ipytui",
        )
        if km.curve_publickey is not None:
            info.curve_publickey = km.curve_publickey.decode("ascii")
            info.curve_secretkey = km.curve_secretkey.decode("ascii")
        return info

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Run the launcher over ssh, hand it the request, read its one-line reply."""
        assert self._request is not None, "pre_launch comes first"
        remote = [cmd[0], *LAUNCHER]
        self._stderr.clear()
        self.process = subprocess.Popen(
            ssh_argv(self.host, list(self.ssh_args), remote),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._drainer = threading.Thread(
            target=self._drain_stderr, args=(self.process,), daemon=True
        )
        self._drainer.start()
        try:
            reply = await asyncio.wait_for(
                asyncio.to_thread(self._handshake, self.process), self.launch_timeout
            )
        except (HandshakeError, OSError, asyncio.TimeoutError) as exc:
            await self._abandon()
            # ssh's last words (why it failed) may still be in the pipe: read them first.
            await asyncio.to_thread(self._drainer.join, COMMAND_TIMEOUT)
            reason = str(exc) or f"no answer in {self.launch_timeout:g} s"
            tail = " | ".join(self._stderr)
            raise RuntimeError(
                f"ipytui-ssh: no kernel started on {self.host}: {reason}"
                + (f" (ssh said: {tail})" if tail else "")
            ) from None
        self.remote_pid, self.remote_file = reply.pid, reply.connection_file
        km = self.parent
        for name in PORT_NAMES:
            setattr(km, name, reply.ports[name])
        self.log.info(
            "ipytui-ssh: kernel %s runs on %s as pid %d (log %s)",
            self.kernel_id,
            self.host,
            reply.pid,
            reply.log,
        )
        self.connection_info = km.get_connection_info()
        return self.connection_info

    def _handshake(self, process: subprocess.Popen[bytes]) -> LaunchReply:
        assert process.stdin is not None and process.stdout is not None
        assert self._request is not None
        try:
            process.stdin.write(self._request.encode())
            process.stdin.close()
        except BrokenPipeError:
            pass  # ssh ended at once: the (empty) reply says so
        return LaunchReply.decode(process.stdout.readline())

    def _drain_stderr(self, process: subprocess.Popen[bytes]) -> None:
        """Keep ssh's stderr flowing (a full pipe would block it) and its tail for errors."""
        assert process.stderr is not None
        for raw in iter(process.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            self.log.debug("ipytui-ssh %s: %s", self.host, line)

    async def _abandon(self) -> None:
        if self.process is not None:
            self.process.kill()
            await self.wait()

    def _close_pipes(self) -> None:
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()

    async def _remote(self, command: list[str]) -> None:
        """Run one short command on the kernel's host; failures are logged, not raised
        (the kernel may be gone already, which is what the caller wanted)."""
        argv = ssh_argv(self.host, list(self.ssh_args), command)
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                argv,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.log.warning("ipytui-ssh: %s on %s failed: %s", command[0], self.host, exc)
            return
        if done.returncode:
            self.log.debug(
                "ipytui-ssh: %s on %s: %s",
                shlex.join(command),
                self.host,
                done.stderr.decode(errors="replace").strip(),
            )

    # -- persistence (jupyter_server's kernel restore) -----------------------
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(
            {"host": self.host, "remote_pid": self.remote_pid, "remote_file": self.remote_file}
        )
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.host = provisioner_info["host"]
        self.remote_pid = provisioner_info["remote_pid"]
        self.remote_file = provisioner_info["remote_file"]
