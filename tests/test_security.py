"""Security: CurveZMQ, the allow-list, key files, refusals, limits, tunnels (issue 7).

Kernels run as real subprocesses (``python -m ipytui.kernel``) and are
driven by our KernelClient, by raw zmq sockets and by jupyter_client. A
refused client must get nothing at all, and the kernel must keep serving
the clients that are allowed.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from conftest import _wait_listening, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from ipytui.kernel.client import tunnel
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.protocol import credentials, keyfiles
from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionError_,
    ConnectionInfo,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)
from ipytui.kernel.protocol.wire import Codec, WireError
from ipytui.kernel.supervisor import security
from ipytui.kernel.tools import keys
from zmq.utils import z85

pytestmark = pytest.mark.timeout(120)
KERNEL = [sys.executable, "-m", "ipytui.kernel", "--debug"]  # log to stderr: the tests read it
REFUSED_WAIT = 2.5  # seconds a refused client waits for anything at all

Launch = Callable[..., tuple[Path, ConnectionInfo, subprocess.Popen[bytes]]]


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Private config/data/runtime dirs, for this process and the kernels it starts."""
    values = {
        "IPYTUI_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTUI_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def launch(tmp_path: Path, kernel_env: dict[str, str]) -> Iterator[Launch]:
    """``launch(*flags, curve=True, **connection_kwargs)`` -> (file, info, process)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*flags: str, curve: bool = True, **kwargs: Any):
        for _ in range(3):  # a concurrent run may take a free port first
            info = new_connection_info(**kwargs)
            if curve:
                credentials.add_server_keys(info)
            path = write_connection_file(info, tmp_path / f"kernel-{len(procs)}.json")
            with open(tmp_path / f"kernel-{len(procs)}.log", "wb") as log:
                proc = subprocess.Popen([*KERNEL, "-f", str(path), *flags], env=kernel_env,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(proc)
            if _wait_listening(proc, info):
                return path, info, proc
        raise RuntimeError(f"kernel would not start; see {tmp_path}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def run_cell(info: ConnectionInfo, code: str, **kwargs: Any) -> str:
    """Connect, run one cell, return its stream output."""
    async with KernelClient(info, **kwargs) as client:
        await client.wait_ready(timeout=20)
        result = await client.execute(code, timeout=20)
        assert result.status == "ok", result.error
        return result.text


async def gets_nothing(info: ConnectionInfo, marker: Path) -> None:
    """A client that must not reach the kernel: no reply, and its code never runs."""
    async with KernelClient(info) as client:
        with pytest.raises(TimeoutError):
            await client.kernel_info(timeout=REFUSED_WAIT)
        with pytest.raises(TimeoutError):
            await client.execute(f"open({str(marker)!r}, 'w').close()", timeout=REFUSED_WAIT)


def keyed(info: ConnectionInfo, pair: keyfiles.KeyPair | None, server_key: str | None = None) -> ConnectionInfo:
    """What a remote client would connect with: the server's public key and ``pair``."""
    shared = credentials.shared_info(info, "127.0.0.1")
    if server_key:
        shared.curve_serverkey = server_key
    if pair is not None:
        shared.curve_publickey, shared.curve_secretkey = pair.public, pair.secret
    return shared


# -- the allow-list (--remote) ------------------------------------------------
async def _logged(log: Path, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never logged"
        await asyncio.sleep(0.05)


async def test_only_the_client_asked_can_answer_input(launch: Launch, tmp_path: Path) -> None:
    """Another client cannot answer (or race an answer into) someone else's input()."""
    _, info, _ = launch(curve=False)
    asked, release = asyncio.Event(), asyncio.Event()

    async def answer(prompt: str, password: bool) -> str:
        asked.set()
        await release.wait()
        return "from bob"

    async with KernelClient(info) as bob, KernelClient(info) as eve:
        await bob.wait_ready(timeout=20)
        await eve.wait_ready(timeout=20)
        bob.input_handler = answer
        cell = asyncio.ensure_future(bob.execute("print('got', input('? '))", timeout=20))
        await asyncio.wait_for(asked.wait(), 20)
        eve.send("stdin", "input_reply", {"status": "ok", "value": "from eve"})
        await _logged(tmp_path / "kernel-0.log", "not asked for input")
        release.set()
        assert (await cell).text == "got from bob\n"


async def test_a_revoked_key_answering_input_ends_the_prompt(launch: Launch) -> None:
    """The revoked client's answer is not used, and its input() ends instead of hanging."""
    bob = keyfiles.new_keypair("bob")
    keyfiles.authorize(bob.public, "bob")
    _, info, proc = launch("--remote", "--ip", "127.0.0.1")

    async def answer(prompt: str, password: bool) -> str:
        keyfiles.revoke("bob")
        return "too late"

    async with KernelClient(keyed(info, bob)) as client:
        await client.wait_ready(timeout=20)
        client.input_handler = answer
        result = await client.execute("print(input('? '))", timeout=20)
    assert result.status == "error" and result.error[0] == "EOFError", result.error
    assert "too late" not in result.text
    assert proc.poll() is None


async def test_input_for_a_client_that_left_ends_and_the_kernel_goes_on(launch: Launch) -> None:
    """Bob's cell waits in input() and Bob quits: his prompt ends (EOFError) instead of
    holding the kernel, and everyone's cells, until someone interrupts."""
    _, info, _ = launch(curve=False)
    asked = asyncio.Event()

    async def never(prompt: str, password: bool) -> str:
        asked.set()
        await asyncio.Event().wait()
        return ""

    bob = KernelClient(info)
    async with KernelClient(info) as alice:
        await alice.wait_ready(timeout=20)
        await bob.start()
        await bob.wait_ready(timeout=20)
        bob.input_handler = never
        bob.send("shell", "execute_request", {"code": "got = input('? ')", "allow_stdin": True,
                                              "silent": False, "store_history": True})
        await asyncio.wait_for(asked.wait(), 20)

        async def error_then_idle(sub: Any) -> Any:
            error = None
            async for msg in sub:
                if msg.msg_type == "error":
                    error = msg
                elif (error is not None and msg.parent_id == error.parent_id
                      and msg.content.get("execution_state") == "idle"):
                    return error

        async with alice.iopub_messages() as sub:
            await bob.stop()
            # Bob's cell ends, idle included (a cell sent before that is queued behind
            # the failed one and aborted, as stop_on_error says).
            error = await asyncio.wait_for(error_then_idle(sub), 20)
        assert error.content["ename"] == "EOFError"
        result = await alice.execute("print('alive')", timeout=20)
        assert result.text == "alive\n"
        assert (await alice.execute("'got' in dir()", timeout=20)).data == {"text/plain": "False"}


def test_an_unreadable_allow_list_lets_nobody_in(tmp_path: Path) -> None:
    alice = keyfiles.new_keypair("alice")
    path = tmp_path / "authorized_keys"
    keyfiles.authorize(alice.public, "alice", path)
    allow = security.AllowList(path)
    assert allow.name_for(alice.public) == "alice"
    path.unlink()
    path.mkdir()  # a directory where the file was: reading fails
    assert allow.name_for(alice.public) is None
    assert allow.name_for(alice.public) is None  # and stays closed on the next look


async def test_revoking_a_key_applies_to_its_open_connection(launch: Launch, tmp_path: Path) -> None:
    """A key taken off the allow-list can no longer run code on a connection it already
    has: its requests get an error reply (no hang), and other clients carry on."""
    alice, bob = keyfiles.new_keypair("alice"), keyfiles.new_keypair("bob")
    keyfiles.authorize(alice.public, "alice")
    keyfiles.authorize(bob.public, "bob")
    _, info, proc = launch("--remote", "--ip", "127.0.0.1")
    async with KernelClient(keyed(info, bob)) as client:
        await client.wait_ready(timeout=20)
        assert (await client.execute("seen = 'bob'", timeout=20)).status == "ok"
        assert keyfiles.revoke("bob") == 1
        result = await client.execute("seen = 'after revoke'", timeout=20)
        assert result.status == "error" and result.error[0] == "PermissionError"
        assert "allow-list" in result.error[1]
        # On IOPub too, where a UI shows a cell's failure (else the cell would wait forever).
        assert [m.msg_type for m in result.outputs] == ["error"]
        control = await client.request("control", "shutdown_request", {"restart": False}, 20)
        assert control.content["status"] == "error"
        reply = await client.kernel_info(timeout=20)
        assert reply["status"] == "error" and "allow-list" in reply["evalue"]
    assert await run_cell(keyed(info, alice), "print(seen)") == "bob\n"
    keyfiles.authorize(bob.public, "bob")  # and a grant applies again
    assert await run_cell(keyed(info, bob), "print(seen)") == "bob\n"
    assert proc.poll() is None
    assert "no longer on the allow-list" in (tmp_path / "kernel-0.log").read_text()


async def test_remote_allowed_key_runs_a_cell_refused_clients_get_nothing(
        launch: Launch, tmp_path: Path) -> None:
    alice, eve = keyfiles.new_keypair("alice"), keyfiles.new_keypair("eve")
    keyfiles.authorize(alice.public, "alice")
    path, info, proc = launch("--remote", "--ip", "127.0.0.1")
    assert await run_cell(keyed(info, alice), "print(6 * 7)") == "42\n"

    marker = tmp_path / "must-not-exist"
    plaintext = read_connection_file(path)
    plaintext.curve_publickey = plaintext.curve_secretkey = None
    await asyncio.gather(
        gets_nothing(keyed(info, eve), marker),                               # a key not on the list
        gets_nothing(keyed(info, None), marker),                              # no key: a throwaway one
        gets_nothing(keyed(info, alice, keyfiles.new_keypair().public), marker),  # wrong server key
        gets_nothing(plaintext, marker),                                      # no encryption at all
    )
    assert await run_cell(keyed(info, alice), "print('still here')") == "still here\n"
    assert not marker.exists()
    assert proc.poll() is None
    # The refusals are logged from the ZAP and monitor threads: wait for their lines.
    log_file = tmp_path / "kernel-0.log"
    await asyncio.to_thread(wait_until, lambda: "is not on the allow-list" in log_file.read_text()
                            and "it does not encrypt" in log_file.read_text(), 20.0,
                            "the refusals in the kernel's log")


async def test_share_file_and_client_keypair(launch: Launch, tmp_path: Path) -> None:
    """The remote user's flow: keys new, owner authorizes, --existing SHARE_FILE."""
    assert keys.main(["new", "--name", "bob"]) == 0
    mine = keyfiles.load_client_keypair()
    assert mine is not None and mine.name == "bob"
    share = tmp_path / "share.json"
    path, info, _ = launch("--remote", "--ip", "127.0.0.1", "--advertise", "127.0.0.1",
                           "--share-file", str(share))
    _wait_for(share.exists)
    shared = read_connection_file(share)
    assert shared.curve_secretkey is None and shared.curve_publickey is None
    assert shared.curve_serverkey == info.curve_publickey
    assert "curve_secretkey" not in share.read_text() and info.curve_secretkey not in share.read_text()
    assert (shared.key, shared.ip, shared.shell_port) == (info.key, "127.0.0.1", info.shell_port)

    # Not authorized yet: nothing. Authorized while the kernel runs: in, no restart.
    marker = tmp_path / "nope"
    await gets_nothing(credentials.client_info(share), marker)
    assert keys.main(["authorize", str(keys.client_key_path().with_suffix(".key"))]) == 0
    assert await run_cell(credentials.client_info(share), "print('hi bob')") == "hi bob\n"
    # The kernel owner connects with the private file (the server's own key).
    assert await run_cell(credentials.client_info(path), "print('owner')") == "owner\n"


def test_client_info_without_a_keypair_says_what_to_do(tmp_path: Path, kernel_env: dict) -> None:
    info = credentials.add_server_keys(new_connection_info())
    share = credentials.write_shared_file(info, "example.test", tmp_path / "share.json")
    with pytest.raises(ConnectionError_, match="ipytui keys new"):
        credentials.client_info(share)


# -- plain Curve (--encrypt, Jupyter's transport_encryption) ------------------
async def test_encrypted_kernel_lets_in_holders_of_the_file_only(launch: Launch, tmp_path: Path) -> None:
    path, info, proc = launch("--encrypt")
    assert await run_cell(credentials.client_info(path), "print(1 + 1)") == "2\n"
    assert await run_cell(keyed(info, None), "print('any key')") == "any key\n"
    plaintext = read_connection_file(path)
    plaintext.curve_publickey = plaintext.curve_secretkey = None
    marker = tmp_path / "marker"
    await asyncio.gather(gets_nothing(plaintext, marker),
                         gets_nothing(keyed(info, None, keyfiles.new_keypair().public), marker))
    assert await run_cell(credentials.client_info(path), "print('ok')") == "ok\n"
    assert not marker.exists() and proc.poll() is None


def test_jupyter_client_transport_encryption_required(kernel_env: dict, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """jupyter_client 8.10 provisions the keys itself and must talk to our kernel."""
    from ipytui.kernel.tools import kernelspec
    from jupyter_client.manager import KernelManager

    kernelspec.install(prefix=str(tmp_path / "prefix"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    km = KernelManager(kernel_name="ipytui", transport_encryption="required")
    km.start_kernel()
    try:
        written = read_connection_file(km.connection_file)
        assert written.curve_publickey and written.curve_secretkey
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30)
            seen: list[str] = []
            reply = kc.execute_interactive(
                "print('over curve')", timeout=30,
                output_hook=lambda m: seen.append(m["content"].get("text", "")))
            assert reply["content"]["status"] == "ok"
            assert "over curve\n" in seen
        finally:
            kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)


def test_jupyter_client_opens_our_private_file_on_a_remote_kernel(launch: Launch) -> None:
    """``jupyter console --existing`` style: the private file's server key is the owner's."""
    from jupyter_client.blocking import BlockingKernelClient

    path, info, _ = launch("--remote", "--ip", "127.0.0.1")
    kc = BlockingKernelClient(connection_file=str(path))
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        reply = kc.execute_interactive("x = 5", timeout=30)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()


def test_heartbeat_answers_any_curve_client_but_no_plaintext(launch: Launch) -> None:
    """jupyter_client pings with a throwaway key, so the echo lets any Curve client in."""
    _, info, _ = launch("--remote", "--ip", "127.0.0.1")
    ctx = zmq.Context()
    try:
        for curve in (True, False):
            sock = ctx.socket(zmq.REQ)
            sock.linger = 0
            if curve:
                sock.curve_serverkey = info.curve_publickey.encode()
                sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
            sock.connect(info.url("hb"))
            sock.send(b"ping")
            assert bool(sock.poll(3000 if curve else 1500)) is curve
            sock.close()
    finally:
        ctx.destroy(linger=0)


async def test_ipytui_talks_to_an_encrypted_ipykernel(tmp_path: Path, kernel_env: dict) -> None:
    info = credentials.add_server_keys(new_connection_info())
    path = write_connection_file(info, tmp_path / "ipykernel.json")
    proc = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", str(path)],
                            env=kernel_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_listening(proc, info)
        assert await run_cell(credentials.client_info(path), "print('ipykernel')") == "ipykernel\n"
    finally:
        proc.kill()
        proc.wait(10)


# -- who is who ----------------------------------------------------------------
async def test_peer_name_comes_from_the_key_not_the_header(launch: Launch) -> None:
    """The presence table (issue 6) shows the allow-list's name, whatever the client claims."""
    alice = keyfiles.new_keypair()
    keyfiles.authorize(alice.public, "Alice Liddell")
    _, info, _ = launch("--remote", "--ip", "127.0.0.1")
    async with KernelClient(keyed(info, alice), username="mallory") as client:
        await client.wait_ready(timeout=20)
        async with client.iopub_messages() as stream:
            client.send("shell", "comm_open", {"comm_id": "c1", "target_name": "ipytui.presence",
                                               "data": {"name": "Mallory", "kind": "ipytui"}})
            me = await asyncio.wait_for(_my_peer_entry(stream, client.codec.session), 20)
    assert (me["authenticated"], me["display_name"]) == ("Alice Liddell", "Alice Liddell")
    assert (me["username"], me["name"]) == ("mallory", "Mallory")  # what it claims, kept apart


async def _my_peer_entry(stream: Any, session: str) -> dict[str, Any]:
    async for msg in stream:
        data = msg.content.get("data") or {}
        if msg.msg_type == "comm_msg" and data.get("type") == "peers":
            for peer in data["peers"]:
                if peer["session"] == session and peer.get("name"):
                    return peer
    raise AssertionError("the iopub stream ended")


def test_server_security_records_the_zap_name_per_connection(kernel_env: dict) -> None:
    alice, eve, server = keyfiles.new_keypair(), keyfiles.new_keypair(), keyfiles.new_keypair()
    keyfiles.authorize(alice.public, "alice")
    sec = security.ServerSecurity.for_kernel(
        ConnectionInfo(curve_publickey=server.public, curve_secretkey=server.secret), remote=True)
    ctx = zmq.Context()
    try:
        sec.start(ctx)
        router = ctx.socket(zmq.ROUTER)
        sec.secure(router)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        for pair, name in ((alice, "alice"), (eve, None), (server, getpass.getuser())):
            dealer = ctx.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.curve_serverkey = server.public.encode()
            dealer.curve_publickey, dealer.curve_secretkey = pair.public.encode(), pair.secret.encode()
            dealer.connect(f"tcp://127.0.0.1:{port}")
            dealer.send(b"hello")
            if name is None:
                assert not router.poll(1000)
                continue
            assert router.poll(5000)
            frames = sec.recv(router)
            assert frames[1:] == [b"hello"] and sec.peer_name(frames[:1]) == name
    finally:
        sec.stop()
        ctx.destroy(linger=0)


def test_plain_curve_names_known_keys_and_leaves_others_anonymous(kernel_env: dict) -> None:
    alice, stranger = keyfiles.new_keypair(), keyfiles.new_keypair()
    keyfiles.authorize(alice.public, "alice")
    server = keyfiles.new_keypair()
    sec = security.ServerSecurity(server.secret, allow_list=security.AllowList(keys.authorized_keys_path()),
                                  owner_name="owner")
    raw = [z85.decode(k.public.encode()) for k in (alice, stranger, server)]
    # The ZAP user id is the key; the name is looked up per message.
    for pair, name in ((alice, "alice"), (stranger, ""), (server, "owner")):
        user = sec.authenticate(security.ZAP_DOMAIN, "10.0.0.9", b"CURVE", [z85.decode(pair.public.encode())])
        assert user == (True, pair.public) and sec.name_of(pair.public) == name
    assert sec.authenticate(security.ZAP_DOMAIN, "10.0.0.9", b"PLAIN", [b"u", b"p"])[0] is False
    sec.require_allowed = True
    assert sec.authenticate(security.ZAP_DOMAIN, "10.0.0.9", b"CURVE", [raw[1]]) == (False, "")
    assert sec.name_of(stranger.public) is None
    assert sec.authenticate(security.HB_DOMAIN, "10.0.0.9", b"CURVE", [raw[1]]) == (True, "")


def test_allow_list_writable_by_others_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    pair = keyfiles.new_keypair()
    keyfiles.authorize(pair.public, "alice", path)
    allow = security.AllowList(path)
    assert allow.name_for(pair.public) == "alice"
    os.chmod(path, 0o666)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert allow.name_for(pair.public) is None


# -- bad input: size limits, floods -------------------------------------------
async def test_oversized_and_flooded_input_is_refused_and_the_kernel_carries_on(
        launch: Launch) -> None:
    _, info, proc = launch(curve=False)
    ctx = zmq.Context()
    try:
        big = ctx.socket(zmq.DEALER)
        big.linger = 0
        big.connect(info.url("shell"))
        big.send(b"x" * (security.MAX_MESSAGE_BYTES + 1))
        junk = ctx.socket(zmq.DEALER)
        junk.linger = 0
        junk.connect(info.url("shell"))
        for n in range(3000):  # unsigned junk, bad JSON, a forged signature
            junk.send_multipart([b"<IDS|MSG>", b"f" * 64, b"{", b"{}", b"{}", f"{n}".encode()])
        hb = ctx.socket(zmq.DEALER)
        hb.linger = 0
        hb.connect(info.url("hb"))
        hb.send(b"x" * (security.HB_MAX_MESSAGE_BYTES + 1))
        assert not hb.poll(1000), "an oversized ping was echoed"
        assert await run_cell(info, "print('fine')") == "fine\n"
        assert proc.poll() is None
    finally:
        ctx.destroy(linger=0)


def test_public_sockets_get_limits(kernel_env: dict) -> None:
    ctx = zmq.Context()
    try:
        sec = security.ServerSecurity(keyfiles.new_keypair().secret)
        sock, hb = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
        sec.secure(sock)
        sec.secure(hb, heartbeat=True)
        # zmq's per-frame limit sits above the message limit, so the codec can still answer.
        assert security.MAX_MESSAGE_BYTES < sock.maxmsgsize <= 2 * security.MAX_MESSAGE_BYTES
        assert hb.maxmsgsize == security.HB_MAX_MESSAGE_BYTES
        assert sock.rcvhwm == security.RECEIVE_HWM and sock.curve_server
        assert (sock.zap_domain, hb.zap_domain) == (security.ZAP_DOMAIN, security.HB_DOMAIN)
        assert sock.handshake_ivl == security.HANDSHAKE_MS
    finally:
        ctx.destroy(linger=0)


# -- binding, files, ports ---------------------------------------------------------
def _run_kernel(args: list[str], env: dict[str, str], wait: float = 20) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*KERNEL, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)


def test_network_address_needs_encryption_or_insecure(tmp_path: Path, kernel_env: dict) -> None:
    proc = _run_kernel(["--ip", "0.0.0.0", "-f", str(tmp_path / "a.json")], kernel_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"refusing to serve 0.0.0.0 without encryption" in err and b"--insecure" in err
    assert not (tmp_path / "a.json").exists(), "a refused start leaves no connection file"
    for flags in (["--insecure"], ["--encrypt"]):
        path = tmp_path / f"k{flags[0]}.json"
        proc = _run_kernel(["--ip", "0.0.0.0", "-f", str(path), *flags], kernel_env)
        try:
            _wait_for(path.exists)
            info = read_connection_file(path)
            assert _wait_listening(proc, info), proc.stderr.read() if proc.stderr else ""
            assert bool(info.curve_secretkey) is (flags == ["--encrypt"])
        finally:
            proc.kill()
            proc.wait(10)


def test_encrypt_refuses_a_connection_file_without_keys(tmp_path: Path, kernel_env: dict) -> None:
    path = write_connection_file(new_connection_info(), tmp_path / "plain.json")
    proc = _run_kernel(["-f", str(path), "--remote"], kernel_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and b"holds no Curve server keys" in err


def test_files_are_private(tmp_path: Path, kernel_env: dict) -> None:
    proc = _run_kernel(["--remote", "--ip", "127.0.0.1"], kernel_env)
    runtime = Path(kernel_env["JUPYTER_RUNTIME_DIR"])
    try:
        _wait_for(lambda: len(list(runtime.glob("*.json"))) >= 2)
        files = sorted(runtime.glob("*.json"))
        assert [f.name.startswith("share-") for f in files].count(True) == 1
        assert _mode(runtime) == 0o700
        for f in files:
            assert _mode(f) == 0o600, f
        private = next(f for f in files if not f.name.startswith("share-"))
        assert asyncio.run(run_cell(credentials.client_info(private), "print(0)")) == "0\n"
    finally:
        proc.terminate()
        proc.wait(20)
    assert not list(runtime.glob("*.json")), "the kernel's own files outlive it"
    keys.main(["new"])
    keys.main(["authorize", keyfiles.new_keypair().public, "--name", "x"])
    config = Path(kernel_env["IPYTUI_CONFIG_DIR"])
    assert _mode(config) == 0o700
    for name in ("client.key_secret", "client.key", "authorized_keys"):
        assert _mode(config / name) == 0o600, name


def test_port_base_order(tmp_path: Path, kernel_env: dict) -> None:
    base = _free_port_run(5)
    path = tmp_path / "k.json"
    proc = _run_kernel(["--port-base", str(base), "-f", str(path)], kernel_env)
    try:
        _wait_for(path.exists)
        info = read_connection_file(path)
        assert [info.port(ch) for ch in ("shell", "iopub", "stdin", "control", "hb")] == \
            list(range(base, base + 5))
        assert _wait_listening(proc, info)
        assert asyncio.run(run_cell(info, "print('ports')")) == "ports\n"
    finally:
        proc.kill()
        proc.wait(10)
    help_text = subprocess.run([*KERNEL, "--help"], capture_output=True, text=True).stdout
    assert "shell, iopub, stdin, control, hb" in " ".join(help_text.split())


# -- ipytui keys ------------------------------------------------------------------
def test_keys_cli(kernel_env: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys.main(["list"]) == 0
    assert "none" in capsys.readouterr().out
    assert keys.main(["new", "--name", "carol"]) == 0
    line = capsys.readouterr().out
    pair = keyfiles.load_client_keypair()
    assert pair is not None and f"{pair.public} carol" in line
    assert zmq.curve_public(pair.secret.encode()).decode() == pair.public
    assert keys.main(["new"]) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err

    line_file = tmp_path / "dave.txt"
    dave = keyfiles.new_keypair()
    line_file.write_text(f"{dave.public} dave\n")
    assert keys.main(["authorize", str(line_file)]) == 0
    assert keys.main(["authorize", pair.public, "--name", "carol"]) == 0
    assert keys.main(["authorize", pair.public]) == 2  # a bare key needs a name
    assert keys.main(["authorize", "not-a-key", "--name", "x"]) == 2
    assert keys.main(["authorize", pair.public, "--name", "bad\nname"]) == 2
    assert keyfiles.read_authorized_keys() == {dave.public: "dave", pair.public: "carol"}
    capsys.readouterr()
    assert keys.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "2 keys" in out and "dave" in out
    assert keys.main(["revoke", "dave"]) == 0
    assert keyfiles.read_authorized_keys() == {pair.public: "carol"}
    assert keys.main(["revoke", "dave"]) == 2


def test_keys_cli_takes_a_key_that_begins_with_a_dash(kernel_env: dict) -> None:
    """About one key in 85 begins with '-' (a Z85 character): not an option."""
    pair = next(p for p in iter(keyfiles.new_keypair, None) if p.public.startswith("-"))
    assert keys.main(["authorize", pair.public, "--name", "erin"]) == 0
    assert keyfiles.read_authorized_keys() == {pair.public: "erin"}
    assert keys.main(["revoke", pair.public]) == 0
    assert keyfiles.read_authorized_keys() == {}


def test_keys_command_dispatch(kernel_env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from ipytui.app.cli import main

    assert main(["keys", "new", "--name", "erin"]) == 0
    assert "erin" in capsys.readouterr().out


def test_authorized_keys_parsing() -> None:
    good, nameless = keyfiles.new_keypair().public, keyfiles.new_keypair().public
    text = textwrap.dedent(f"""\
        # a comment

        {good}   Alice  Liddell
        garbage line
        {nameless}
    """)
    found, problems = keyfiles.parse_authorized_keys(text)
    assert found == {good: "Alice  Liddell"}
    assert [p.split(":")[0] for p in problems] == ["line 4", "line 5"]


# -- ssh tunnels ---------------------------------------------------------------------
def test_ssh_command_line() -> None:
    info = ConnectionInfo(shell_port=5001, iopub_port=5002, stdin_port=5003, control_port=5004,
                          hb_port=5005, ip="0.0.0.0")
    local = {ch: 7000 + n for n, ch in enumerate(CHANNELS)}
    cmd = tunnel.ssh_command(info, "me@far.example:2222", local)
    assert cmd[:2] == ["ssh", "-N"] and cmd[-2:] == ["--", "me@far.example"]
    assert "ExitOnForwardFailure=yes" in cmd
    assert cmd[cmd.index("-p") + 1] == "2222"
    forwards = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-L"]
    assert forwards == [f"127.0.0.1:{7000 + n}:127.0.0.1:{5001 + n}" for n in range(5)]
    info.ip = "fd00::5"
    assert tunnel.ssh_command(info, "far", local)[-3].endswith(":[fd00::5]:5005")
    moved = tunnel.tunnelled_info(info, local)
    assert (moved.ip, moved.shell_port, moved.hb_port, info.shell_port) == ("127.0.0.1", 7000, 7004, 5001)
    for bad in ("-oProxyCommand=evil", "host with space", ""):
        with pytest.raises(ConnectionError_):
            tunnel.ssh_command(info, bad, local)
    with pytest.raises(ConnectionError_):
        tunnel.ssh_command(ConnectionInfo(transport="ipc"), "far", local)


FAKE_SSH = """\
#!{python}
# Stands in for ssh: records its argv, then forwards each -L like ssh would.
import socket, sys, threading
open({record!r}, "w").write("\\n".join(sys.argv[1:]))
args, specs = sys.argv[1:], []
for i, arg in enumerate(args):
    if arg == "-L":
        specs.append(args[i + 1].split(":"))

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def serve(lhost, lport, rhost, rport):
    server = socket.create_server((lhost, int(lport)))
    while True:
        conn, _ = server.accept()
        try:
            remote = socket.create_connection((rhost, int(rport)))
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pipe, args=(conn, remote), daemon=True).start()
        threading.Thread(target=pipe, args=(remote, conn), daemon=True).start()

for spec in specs:
    threading.Thread(target=serve, args=spec, daemon=True).start()
threading.Event().wait()
"""


async def test_ssh_tunnel_end_to_end_with_a_stand_in_ssh(launch: Launch, tmp_path: Path) -> None:
    """No sshd here: a stand-in ``ssh`` forwards the ports; the rewritten info must work."""
    fake = tmp_path / "ssh"
    record = tmp_path / "argv"
    fake.write_text(FAKE_SSH.format(python=sys.executable, record=str(record)))
    fake.chmod(0o755)
    path, info, _ = launch("--encrypt")
    with tunnel.open_tunnel(credentials.client_info(path), "someone@far", ssh=str(fake)) as tun:
        assert tun.info.ip == "127.0.0.1"
        assert {tun.info.port(ch) for ch in CHANNELS}.isdisjoint(info.port(ch) for ch in CHANNELS)
        assert await run_cell(tun.info, "print('through ssh')") == "through ssh\n"
        assert record.read_text().split("\n")[-1] == "someone@far"
    assert tun.process.poll() is not None


def test_ssh_failure_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\necho 'ssh: connect to host far port 22: Connection refused' >&2\nexit 255\n")
    fake.chmod(0o755)
    info = new_connection_info()
    with pytest.raises(ConnectionError_, match="Connection refused"):
        tunnel.open_tunnel(info, "far", ssh=str(fake), timeout=10)


# -- helpers ---------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def _free_port_run(count: int) -> int:
    """A base port N with N..N+count-1 all free right now."""
    for base in range(30000 + os.getpid() % 1000 * 20, 60000, 37):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


# -- the wire codec: signatures under fuzzing (tests/test_wire.py fuzzes the parsing) ----
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=5), st.lists(st.binary(max_size=16), max_size=3),
       st.data())
def test_codec_round_trips_and_refuses_any_tampering(content: dict, buffers: list[bytes],
                                                     data: st.DataObject) -> None:
    sender, receiver = Codec(b"k"), Codec(b"k")
    frames = sender.serialize(sender.msg("execute_request", content, buffers=buffers), [b"id"])
    msg = receiver.deserialize(frames)
    assert (msg.content, msg.buffers, msg.identities) == (content, buffers, [b"id"])
    index = data.draw(st.integers(2, 6), label="frame")  # the signature or a signed dict
    flipped = bytearray(frames[index] or b"\0")
    pos = data.draw(st.integers(0, len(flipped) - 1), label="byte")
    flipped[pos] ^= data.draw(st.integers(1, 255), label="xor")
    tampered = [*frames[:index], bytes(flipped), *frames[index + 1:]]
    with pytest.raises(WireError):
        Codec(b"k").deserialize(tampered)


def test_codec_deeply_nested_json_is_a_wire_error() -> None:
    codec = Codec(b"k")
    parts = [b"[" * 100_000, b"{}", b"{}", b"{}"]
    with pytest.raises(WireError):
        codec.deserialize([b"<IDS|MSG>", codec.sign(parts), *parts])
