"""One kernel on another host (issue 18, part 3): the ``ipytui-ssh`` provisioner.

The other host is a network namespace joined to ours by a veth pair, running
a real sshd of the test's own (``netns_support``); the kernelspec names the
provisioner and jupyter_client's ``KernelManager`` / ``BlockingKernelClient``
and the installed ``ipytui --kernel NAME`` (in tmux) drive the kernel over the
veth, CurveZMQ on. Nothing is mocked. Skipped, with the reason, where
namespaces or OpenSSH cannot be had.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq
from conftest import wait_until
from ipytui.kernel.protocol.connection import read_connection_file
from ipytui.kernel.provision.handshake import HandshakeError, LaunchReply, LaunchRequest
from ipytui.kernel.provision.ssh import SSHProvisioner
from netns_support import RemoteHost, pids_in, remote_host
from test_ui_tmux import Terminal, ipytui_command, terminal_env

pytestmark = pytest.mark.timeout(180)
NAME = "remote-test"
REFUSED_WAIT = 2.5  # seconds a plaintext client waits for any answer at all


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteHost]:
    with remote_host(tmp_path_factory.mktemp("remote")) as made:
        wait_until(lambda: made.ssh("true").returncode == 0, 60, "sshd in the namespace")
        yield made


def remote_env(tmp_path: Path) -> dict[str, str]:
    """The kernel's own dirs on the remote host (the kernelspec's env)."""
    root = tmp_path / "on-remote"
    return {
        "IPYTUI_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTUI_CONFIG_DIR": str(root / "config"),
        "IPYTHONDIR": str(root / "ipython"),
    }


def install_spec(host: RemoteHost, tmp_path: Path, *flags: str) -> dict[str, str]:
    """``ipytui kernelspec install --ssh ...`` as a user types it; the env to find it."""
    argv = [
        *ipytui_command(),
        "kernelspec",
        "install",
        "--prefix",
        str(tmp_path / "prefix"),
        "--name",
        NAME,
        "--ssh",
        f"root@{host.address}",
        *[f"--ssh-arg={arg}" for arg in host.ssh_args],
        *[f"--env={k}={v}" for k, v in remote_env(tmp_path).items()],
        *flags,
    ]
    subprocess.run(argv, check=True, capture_output=True, text=True)
    return {
        "JUPYTER_PATH": str(tmp_path / "prefix" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "here" / "runtime"),
    }


def net_namespace(host: RemoteHost) -> str:
    """What ``os.readlink('/proc/self/ns/net')`` says inside the remote namespace."""
    return f"net:[{os.stat(f'/run/netns/{host.ns}').st_ino}]"


def ssh_clients(host: RemoteHost) -> list[psutil.Process]:
    """ssh clients to the remote host still running here, whoever started them."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if (
            proc.info["name"] == "ssh"
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and any(host.address in part for part in proc.info["cmdline"] or [])
        ):
            found.append(proc)
    return found


def left_over(host: RemoteHost) -> set[int]:
    """Processes in the remote namespace other than the listening sshd."""
    assert host.sshd is not None
    return pids_in(host.ns) - {host.sshd.pid}


def run(kc: Any, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """Execute ``code``: the reply content and its stdout."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook, stop_on_error=False)
    return reply["content"], "".join(out)


def plaintext_gets_nothing(info: dict[str, Any], session: Any) -> bool:
    """A client without Curve keys gets no kernel_info_reply: the wire is encrypted."""
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:
        sock.linger = 0
        sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        session.send(sock, "kernel_info_request", {})
        return sock.poll(int(REFUSED_WAIT * 1000)) == 0


def test_jupyter_client_runs_interrupts_and_recovers_a_remote_kernel(
    host: RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.manager import KernelManager

    for key, value in install_spec(host, tmp_path).items():
        monkeypatch.setenv(key, value)
    km = KernelManager(kernel_name=NAME, transport_encryption="required")
    km.start_kernel()
    kc = km.client()
    try:
        assert isinstance(km.provisioner, SSHProvisioner)
        remote_path = Path(km.provisioner.remote_file or "")
        info = km.get_connection_info()
        assert info["ip"] == host.address and info["curve_secretkey"]
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        # It runs in the other namespace, as a process of that namespace.
        reply, out = run(kc, "import os; print(os.readlink('/proc/self/ns/net')); x = 41")
        assert reply["status"] == "ok" and out == net_namespace(host) + "\n"
        kc.kernel_info()
        kinfo = kc.get_shell_msg(timeout=30)["content"]
        assert kinfo["ipytui"]["encrypted"] is True
        assert kinfo["ipytui"]["pid"] in pids_in(host.ns)
        remote_file = read_connection_file(km.provisioner.remote_file)  # a shared filesystem
        assert remote_file.curve_secretkey == info["curve_secretkey"]
        assert plaintext_gets_nothing(info, km.session)
        # Interrupt by message: the sleeping cell stops, the kernel keeps serving.
        msg_id = kc.execute("print('sleeping', flush=True); import time; time.sleep(600)")
        wait_until(lambda: _stream_seen(kc, msg_id, "sleeping"), 60, "the cell to start")
        km.interrupt_kernel()
        reply = _reply_to(kc, msg_id)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        # A segfault: an error reply, and the namespace from before is back.
        reply, _ = run(kc, "import ctypes; ctypes.string_at(0)")
        assert reply["status"] == "error"
        reply, out = run(kc, "print(x + 1)")
        assert reply["status"] == "ok" and out == "42\n"
        # A restart through the manager: a new process on the remote host, fresh state.
        km.restart_kernel()
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "print('x' in globals(), os.getpid() if 'os' in globals() else 0)")
        assert reply["status"] == "ok" and out == "False 0\n"
        assert km.provisioner.remote_pid in pids_in(host.ns)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    wait_until(lambda: not left_over(host), 30, "the remote namespace to hold only sshd")
    assert ssh_clients(host) == []
    assert not remote_path.exists()  # the kernel removed its connection file there
    assert not Path(km.connection_file).exists()


def test_signals_cross_over_ssh_and_a_killed_kernel_is_cleaned_up(
    host: RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """interrupt_mode signal: SIGINT is sent with kill over ssh; shutdown(now=True)
    kills the kernel there, and the provisioner removes what it could not."""
    from jupyter_client.manager import KernelManager

    for key, value in install_spec(host, tmp_path, "--interrupt-mode", "signal").items():
        monkeypatch.setenv(key, value)
    km = KernelManager(kernel_name=NAME, transport_encryption="auto")
    km.start_kernel()
    kc = km.client()
    remote_path = Path(km.provisioner.remote_file or "")
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("print('sleeping', flush=True); import time; time.sleep(600)")
        wait_until(lambda: _stream_seen(kc, msg_id, "sleeping"), 60, "the cell to start")
        km.interrupt_kernel()
        reply = _reply_to(kc, msg_id)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert remote_path.exists()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    wait_until(lambda: not left_over(host), 30, "the remote namespace to hold only sshd")
    assert ssh_clients(host) == []
    assert not remote_path.exists()  # a killed kernel leaves it; the provisioner removed it


def _stream_seen(kc: Any, msg_id: str, text: str) -> bool:
    try:
        msg = kc.get_iopub_msg(timeout=0.2)
    except Exception:  # queue.Empty: nothing yet
        return False
    return (
        msg["parent_header"].get("msg_id") == msg_id
        and msg["msg_type"] == "stream"
        and text in msg["content"]["text"]
    )


def _reply_to(kc: Any, msg_id: str) -> dict[str, Any]:
    while True:
        msg = kc.get_shell_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]


def test_ipytui_kernel_name_opens_the_remote_kernel_in_tmux(
    host: RemoteHost, tmp_path: Path
) -> None:
    env = {**terminal_env(tmp_path), **install_spec(host, tmp_path)}
    term = Terminal([*ipytui_command(), "--kernel", NAME, "--shutdown-on-exit"], env)
    try:
        term.wait_for("idle", "the remote kernel, idle")
        term.type("import os; os.readlink('/proc/self/ns/net')")
        term.keys("Enter")
        term.wait_for(f"Out[1]: '{net_namespace(host)}'", "the remote namespace")
        runtime = Path(env["JUPYTER_RUNTIME_DIR"])
        files = list(runtime.glob(f"kernel-{NAME}-*.json"))
        assert len(files) == 1 and read_connection_file(files[0]).curve_secretkey
        # F8 restarts in place (the keeper drops the spec's --exit-on-restart).
        term.keys("F8")
        term.wait_for("Restart the kernel", "the restart question")
        term.keys("y")
        # Typed only once the restart is told: under load, keys sent while it is on the
        # way went to an editor the restart then cleared.
        term.wait_for("Kernel restarted", "the restart's event")
        wait_until(lambda: "Restart the kernel" not in term.screen(), 40, "the question gone")
        term.type("print('fresh', 'os' in globals(), len(open('/proc/net/dev').readlines()))")
        term.keys("Enter")
        term.wait_for("fresh False 4", "a fresh namespace, still there (lo, veth)")
        term.keys("C-q")
        term.wait_for_any(("kernel shut down", "Pane is dead"), "the UI's exit")
        wait_until(lambda: not left_over(host), 30, "the remote namespace to hold only sshd")
        wait_until(lambda: not _keepers(tmp_path), 30, "the keeper to exit")
        assert ssh_clients(host) == []
        assert not files[0].exists()
    finally:
        term.close()
        for proc in _keepers(tmp_path):
            proc.kill()


def _keepers(tmp_path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "ipytui.kernel.provision.keeper" in cmdline and any(str(tmp_path) in a for a in cmdline):
            found.append(proc)
    return found


def test_a_refused_login_is_a_clear_error_and_leaves_nothing(
    host: RemoteHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipytui.kernel.tools import kernelspec
    from jupyter_client.manager import KernelManager

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    args = [*host.ssh_args, "-i", str(stranger)]
    args[args.index("-i") + 1] = str(stranger)  # the first -i: a key sshd does not know
    kernelspec.install(
        NAME,
        prefix=str(tmp_path / "prefix"),
        interrupt_mode="message",
        provisioner=kernelspec.ssh_provisioner(f"root@{host.address}", args),
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    km = KernelManager(kernel_name=NAME)
    with pytest.raises(RuntimeError, match=r"no kernel started on root@.*Permission denied"):
        km.start_kernel()
    wait_until(
        lambda: ssh_clients(host) == [] and not left_over(host),
        30,
        "no ssh client nor remote process left (an earlier test's may still be ending)",
    )
    assert not any((tmp_path / "runtime").glob("*.json"))


# -- the launcher's side of the handshake, on the remote host -------------------------------
@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"", "no launch request"),
        (b"not json\n", "not JSON"),
        (b'{"argv": [], "env": {}, "connection": {}, "kernel_id": "a"}\n', "argv is empty"),
        (b'{"argv": ["python"], "env": {}, "connection": {}, "kernel_id": "../x"}\n', "kernel_id"),
        (
            b'{"argv": ["no-such-program-here"], "env": {}, "connection": {"ip": "127.0.0.1"},'
            b' "kernel_id": "k1"}\n',
            "no program",
        ),
        (  # a kernel address that is not this host's
            b'{"argv": ["python3"], "env": {}, "connection": {"ip": "203.0.113.9"},'
            b' "kernel_id": "k1"}\n',
            "Cannot assign requested address",
        ),
    ],
)
def test_the_launcher_refuses_bad_requests_over_ssh(
    host: RemoteHost, tmp_path: Path, line: bytes, says: str
) -> None:
    runtime = tmp_path / "runtime"
    done = subprocess.run(
        [
            "ssh",
            "-T",
            *host.ssh_args,
            f"root@{host.address}",
            f"JUPYTER_RUNTIME_DIR={runtime} {sys.executable} -m ipytui.kernel.provision.launcher",
        ],
        input=line,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    with pytest.raises(HandshakeError, match=says):
        LaunchReply.decode(done.stdout)
    assert not any(runtime.glob("*"))


def test_handshake_round_trip() -> None:
    request = LaunchRequest(["python", "-f", "{connection_file}"], {"A": "1"}, {"ip": "h"}, "k-1")
    assert LaunchRequest.decode(request.encode()) == request
    reply = LaunchReply(
        1234,
        {f"{c}_port": 5000 + i for i, c in enumerate(("shell", "iopub", "stdin", "control", "hb"))},
        "/r/kernel-k-1.json",
        "/d/kernel-k-1.log",
    )
    assert LaunchReply.decode(reply.encode()) == reply
    bad = json.loads(reply.encode())
    bad["ports"]["hb_port"] = 70000
    with pytest.raises(HandshakeError, match="TCP ports"):
        LaunchReply.decode(json.dumps(bad).encode())


def test_kernelspec_ssh_options_need_a_host(tmp_path: Path) -> None:
    done = subprocess.run(
        [*ipytui_command(), "kernelspec", "install", "--prefix", str(tmp_path), "--ssh-arg=-p"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "need --ssh HOST" in done.stderr
    assert not (tmp_path / "share").exists()
