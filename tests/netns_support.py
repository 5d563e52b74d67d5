"""Network namespaces as extra hosts for tests: iproute2 helpers, and a
``RemoteHost``: one namespace joined to this one by a veth pair, running a
real OpenSSH server of the test's own (private config, host key, port,
key-only login with a key the test makes). The filesystem is shared, so the
installed ipytui is there. Everything is torn down with the namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_PORT = 2222


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def pids_in(ns: str) -> set[int]:
    """Every process in the network namespace ``ns``."""
    return {int(pid) for pid in ip("netns", "pids", ns, check=False).stdout.split()}


def kill_all_in(ns: str) -> None:
    for pid in pids_in(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def addresses(tag: int) -> tuple[str, str]:
    """(this side, remote side) of a /30 of 198.18.0.0/15 (RFC 2544, never routed)
    chosen by ``tag``, so concurrent test runs do not share one."""
    base = (tag % 32768) * 4
    prefix = f"198.{18 + base // 65536}.{base // 256 % 256}"
    return f"{prefix}.{base % 256 + 1}", f"{prefix}.{base % 256 + 2}"


@dataclass
class RemoteHost:
    """A namespace ``ns`` at ``address`` running sshd; ``ssh_args`` log in as root."""

    ns: str
    address: str
    local_address: str
    sshd: subprocess.Popen[bytes] | None = None
    ssh_args: list[str] = field(default_factory=list)

    def ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a command on the remote host (as a user would, through sshd)."""
        return subprocess.run(
            ["ssh", "-T", *self.ssh_args, f"root@{self.address}", command],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )


def _start_sshd(host: RemoteHost, root: Path) -> None:
    root.mkdir(mode=0o700)
    host_key, user_key = root / "host_ed25519", root / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
    host_pub = (root / "host_ed25519.pub").read_text().split()
    (root / "known_hosts").write_text(f"[{host.address}]:{SSH_PORT} {host_pub[0]} {host_pub[1]}\n")
    (root / "sshd_config").write_text(
        f"Port {SSH_PORT}\nListenAddress {host.address}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        # The host shares /root with this machine: SHLVL=1 keeps bash from sourcing
        # root's ~/.bashrc for ssh commands (its `pyenv init` takes a machine-wide
        # rehash lock that a busy machine can hold for a minute).
        "SetEnv SHLVL=1\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = open(root / "sshd.log", "wb")  # noqa: SIM115 - handed to the process
    host.sshd = subprocess.Popen(
        ["ip", "netns", "exec", host.ns, SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    host.ssh_args = [
        "-F",
        "/dev/null",
        "-p",
        str(SSH_PORT),
        "-i",
        str(user_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={root / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=20",
    ]


@contextlib.contextmanager
def remote_host(tmp_path: Path) -> Iterator[RemoteHost]:
    """A RemoteHost that answers ssh; skips where namespaces or sshd cannot be had."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.skip("OpenSSH (Debian openssh-server, openssh-client) is not installed")
    tag = os.getpid()
    ns, veth_here, veth_there = f"ipytui-r{tag}", f"ipyrh{tag % 100000}", f"ipyrr{tag % 100000}"
    here, there = addresses(tag)
    made = ip("netns", "add", ns, check=False)
    if made.returncode:
        pytest.skip(f"cannot make network namespaces here: {made.stderr.strip()}")
    host = RemoteHost(ns, there, here)
    try:
        for step in [
            ("link", "add", veth_here, "type", "veth", "peer", "name", veth_there),
            ("link", "set", veth_there, "netns", ns),
            ("addr", "add", f"{here}/30", "dev", veth_here),
            ("-n", ns, "addr", "add", f"{there}/30", "dev", veth_there),
            ("link", "set", veth_here, "up"),
            ("-n", ns, "link", "set", veth_there, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]:
            done = ip(*step, check=False)
            if done.returncode:
                pytest.skip(
                    f"cannot wire the namespace (ip {' '.join(step)}): {done.stderr.strip()}"
                )
        _start_sshd(host, tmp_path / "sshd")
        yield host
    finally:
        if host.sshd is not None:
            host.sshd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.sshd.wait(10)
        kill_all_in(ns)
        ip("netns", "del", ns, check=False)
        ip("link", "del", veth_here, check=False)  # gone with the namespace, normally
