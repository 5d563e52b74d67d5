"""The ``ipytui`` command line: --kernel NAME, --ssh, encrypted --existing, kernel memory.

Kernels are real (our supervisor, started through a kernelspec installed into
a temporary JUPYTER_PATH, or directly); ssh is replaced by a fake tunnel so
no network or ssh server is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ipytui.app import cli, launch
from ipytui.app.app import ExitInfo, IpytuiApp
from ipytui.app.config import Config
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.protocol import credentials
from ipytui.kernel.protocol.connection import (
    ConnectionInfo,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)
from ipytui.kernel.tools import kernelspec

pytestmark = pytest.mark.timeout(120)
SIZE = (120, 36)
WAIT = 30.0


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Private Jupyter and ipytui dirs, for this process and the kernels it starts."""
    values = {
        "IPYTUI_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTUI_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_PATH": str(tmp_path / "prefix" / "share" / "jupyter"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def kernels() -> Any:
    """Connection files of kernels a test started; each is shut down (or killed) after."""
    started: list[Path] = []
    yield started
    for path in started:
        _stop_kernel(path)


def _stop_kernel(path: Path) -> None:
    import asyncio

    async def shutdown() -> int | None:
        async with KernelClient(credentials.client_info(path)) as client:
            info = await client.kernel_info(timeout=10)
            pid = (info.get("ipytui") or {}).get("pid")
            with contextlib.suppress(Exception):
                await client.shutdown(timeout=10)
            return pid

    try:
        pid = asyncio.run(shutdown())
    except Exception:
        return
    deadline = time.monotonic() + 10
    while pid and time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def _kernel_info(info: ConnectionInfo) -> dict[str, Any]:
    async with KernelClient(info) as client:
        return await client.wait_ready(WAIT)


async def _wait(pilot, predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def _app(connection: Any) -> IpytuiApp:
    return IpytuiApp(connection, config=Config(display_name="alice"), deterministic=True)


# -- --kernel NAME ---------------------------------------------------------------
def _install_spec(tmp_path: Path, name: str = "ipytui-cli-test") -> str:
    kernelspec.install(name, prefix=str(tmp_path / "prefix"), display_name="ipytui (test)")
    return name


def test_kernelspec_argv_fills_in_the_connection_file(kernel_env: dict, tmp_path: Path) -> None:
    name = _install_spec(tmp_path)
    argv, env = launch.kernelspec_argv(name, tmp_path / "k.json")
    assert argv == [sys.executable, "-m", "ipytui.kernel", "-f", str(tmp_path / "k.json")]
    assert "--exit-on-restart" not in argv  # restarts happen in place: we are no kernel manager
    assert env == {}


async def test_kernel_flag_starts_an_installed_kernelspec_and_the_app_attaches(
        kernel_env: dict, tmp_path: Path, kernels: list[Path]) -> None:
    name = _install_spec(tmp_path)
    args = cli.parse_args(["--kernel", name])
    path = cli.resolve_connection_file(args)
    kernels.append(path)
    assert path.parent == tmp_path / "runtime" and path.name.startswith(f"kernel-{name}-")
    assert read_connection_file(path).kernel_name == name
    info = await _kernel_info(credentials.client_info(path))
    assert info["implementation"] == "ipytui"
    kernel_pid = info["ipytui"]["pid"]
    # Detached: its own session, so the UI's terminal signals never reach it.
    assert os.getsid(kernel_pid) == kernel_pid != os.getsid(0)

    app = _app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.main_screen
        await _wait(pilot, lambda: screen.lifecycle == "ok", "the app to attach")
        assert screen.status.kernel_name == name
        assert app.connection_file == str(path.resolve())
        await app.quit_session(shutdown=False)
    assert _alive(kernel_pid)  # the kernel outlives the UI


def test_kernel_flag_unknown_name_is_a_clear_error(kernel_env: dict, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _install_spec(tmp_path)
    assert cli.run_ui(cli.parse_args(["--kernel", "no-such-kernel"])) == 2
    err = capsys.readouterr().err
    assert "no kernelspec named 'no-such-kernel'" in err and "ipytui-cli-test" in err
    assert not list((tmp_path / "runtime").glob("kernel-*.json"))  # nothing left behind


def test_kernel_flag_without_jupyter_client(kernel_env: dict, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jupyter_client.kernelspec", None)
    with pytest.raises(launch.KernelSpecError, match="needs jupyter_client"):
        launch.start_kernelspec("python3")


def test_kernel_flag_a_kernel_that_dies_at_once(kernel_env: dict, tmp_path: Path) -> None:
    spec_dir = tmp_path / "prefix" / "share" / "jupyter" / "kernels" / "broken"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        '{"argv": ["python", "-c", "raise SystemExit(3)", "{connection_file}"],'
        ' "display_name": "broken", "language": "python"}')
    with pytest.raises(RuntimeError, match="exited with status 3"):
        launch.start_kernelspec("broken")


def test_kernel_flag_shutdown_on_exit_removes_the_connection_file(
        kernel_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Path] = []

    def start_kernelspec(name: str) -> Path:
        started.append(write_connection_file(new_connection_info(kernel_name=name),
                                             tmp_path / "runtime" / f"kernel-{name}-x.json"))
        return started[-1]

    monkeypatch.setattr(launch, "start_kernelspec", start_kernelspec)
    monkeypatch.setattr(IpytuiApp, "run", lambda self: ExitInfo(self.connection_file, True))
    assert cli.run_ui(cli.parse_args(["--kernel", "python3", "--shutdown-on-exit"])) == 0
    assert started and not started[0].exists()


def test_kernel_and_existing_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--kernel", "python3", "--existing", "k.json"])
    assert "pick one" in capsys.readouterr().err


# -- --ssh -----------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["bob@example.org", "example.org", "bob@10.0.0.2:2222"])
def test_ssh_destination_parses(spec: str) -> None:
    args = cli.parse_args(["--existing", "k.json", "--ssh", spec])
    assert args.ssh == spec and args.existing == "k.json"


@pytest.mark.parametrize("spec", ["-oProxyCommand=touch /tmp/x", "bob@host:port", "bob@host:0",
                                  "bob host", ""])
def test_ssh_destination_refuses_bad_text(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--existing", "k.json", "--ssh", spec])
    assert "--ssh" in capsys.readouterr().err


def test_ssh_needs_existing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--ssh", "bob@host"])
    assert "--ssh needs --existing" in capsys.readouterr().err


def test_ssh_tunnel_opens_before_the_ui_and_closes_after(
        kernel_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    info = credentials.add_server_keys(new_connection_info())
    info.ip = "10.1.2.3"  # the kernel's address as the ssh host sees it
    path = write_connection_file(info, tmp_path / "remote.json")
    events: list[Any] = []
    through = new_connection_info()

    class FakeTunnel:
        info = through

        def close(self) -> None:
            events.append("closed")

    def open_tunnel(got: ConnectionInfo, spec: str) -> FakeTunnel:
        events.append(("open", spec, got))
        return FakeTunnel()

    def run(self: IpytuiApp) -> ExitInfo:
        events.append(("run", self.info, self.connection_file))
        return ExitInfo(self.connection_file, False)

    monkeypatch.setattr("ipytui.kernel.client.tunnel.open_tunnel", open_tunnel)
    monkeypatch.setattr(IpytuiApp, "run", run)
    assert cli.run_ui(cli.parse_args(["--existing", str(path), "--ssh", "bob@gw:2222"])) == 0
    (opened, spec, got), ran, closed = events
    assert (opened, spec, closed) == ("open", "bob@gw:2222", "closed")
    assert got.curve_serverkey == credentials.shared_info(info, "x").curve_serverkey  # client keys set
    assert ran == ("run", through, str(path))
    assert f"ipytui --existing {path} --ssh bob@gw:2222" in capsys.readouterr().out


def test_ssh_tunnel_failure_is_reported(kernel_env: dict, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A real ``ssh`` run against a host that cannot exist (reserved .invalid TLD)."""
    path = write_connection_file(new_connection_info(), tmp_path / "k.json")
    ssh = "ssh" if subprocess.run(["which", "ssh"], capture_output=True).returncode == 0 else None
    if ssh is None:
        pytest.skip("no ssh client installed")
    args = cli.parse_args(["--existing", str(path), "--ssh", "nobody@ipytui-test.invalid"])
    assert cli.run_ui(args) == 2
    assert "ssh tunnel to nobody@ipytui-test.invalid failed" in capsys.readouterr().err


# -- encrypted kernels and the status pane ------------------------------------
def _start_our_kernel(tmp_path: Path, *flags: str, curve: bool = False) -> tuple[Path, subprocess.Popen]:
    info = new_connection_info()
    if curve:
        credentials.add_server_keys(info)
    path = write_connection_file(info, tmp_path / "enc.json")
    proc = subprocess.Popen([sys.executable, "-m", "ipytui.kernel", "-f", str(path), *flags],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return path, proc


async def test_existing_encrypted_kernel_attaches_and_says_encrypted(
        kernel_env: dict, tmp_path: Path) -> None:
    path, proc = _start_our_kernel(tmp_path, "--encrypt", curve=True)
    try:
        app = _app(path)
        assert app.info.curve_serverkey  # client_info filled in the keys
        async with app.run_test(size=SIZE) as pilot:
            screen = app.main_screen
            await _wait(pilot, lambda: screen.lifecycle == "ok", "the encrypted kernel")
            assert screen.kernel_info_content["ipytui"]["encrypted"] is True
            assert screen.status.encrypted and "local · encrypted" in screen.status.plain
            await app.quit_session(shutdown=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_share_file_without_a_keypair_is_a_clear_error(
        kernel_env: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = credentials.add_server_keys(new_connection_info())
    share = credentials.write_shared_file(info, "127.0.0.1", tmp_path / "share.json")
    assert cli.run_ui(cli.parse_args(["--existing", str(share)])) == 2
    assert "ipytui keys new" in capsys.readouterr().err


@pytest.mark.parametrize(("remote", "encrypted", "text", "warns"), [
    (False, False, "local", False),
    (False, True, "local · encrypted", False),
    (True, True, "remote · encrypted", False),
    (True, False, "remote · ⚠ insecure", True),
])
async def test_status_connection_field(remote: bool, encrypted: bool, text: str, warns: bool) -> None:
    from ipytui.widgets.kernel_status import KernelStatus
    from textual.app import App

    class Host(App):
        def compose(self):
            yield KernelStatus(id="status", show_volatile=False)

    async with Host().run_test() as pilot:
        status = pilot.app.query_one(KernelStatus)
        status.set(remote=remote, encrypted=encrypted)
        await pilot.pause()
        label = status.query_one("#ks-conn")
        assert str(label.render()) == text
        assert label.has_class("-insecure") is warns


async def test_a_kernel_ipytui_starts_removes_its_connection_file_at_shutdown(
        kernel_env: dict, tmp_path: Path) -> None:
    launched = launch.spawn_kernel()
    try:
        path = await asyncio.to_thread(launched.wait)
        async with KernelClient(credentials.client_info(path)) as client:
            await client.wait_ready(timeout=20)
            await client.shutdown(timeout=10)
        await asyncio.to_thread(launched.process.wait, 20)
    finally:
        if launched.process.poll() is None:
            os.killpg(launched.process.pid, signal.SIGKILL)
            launched.process.wait(10)
    assert not path.exists()


# -- kernel memory -----------------------------------------------------------------
async def test_kernel_info_reports_rss(kernel_env: dict, tmp_path: Path) -> None:
    path, proc = _start_our_kernel(tmp_path)
    try:
        info = await _kernel_info(credentials.client_info(path))
        extra = info["ipytui"]
        page = os.sysconf("SC_PAGE_SIZE")
        own = int(Path(f"/proc/{extra['worker_pid']}/statm").read_text().split()[1]) * page
        assert extra["rss"] > own > 1_000_000  # supervisor + worker (+ snapshot) >= the worker alone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_rss_bytes_skips_missing_processes() -> None:
    from ipytui.kernel.protocol.procs import rss_bytes

    mine = rss_bytes(os.getpid())
    assert mine > 0
    assert rss_bytes(os.getpid(), os.getpid(), 0, 2**22 + 1) == mine  # once each; gone pids add 0


def test_goodbye_mentions_ssh() -> None:
    assert cli.goodbye(None, "/k.json", ssh="bob@h").endswith("ipytui --existing /k.json --ssh bob@h")
    assert cli.goodbye(SimpleNamespace(kernel_shut_down=True), "/k.json") == "ipytui: kernel shut down."
    lost = cli.goodbye(SimpleNamespace(kernel_shut_down=False, kernel_responding=False), "/k.json")
    assert "not responding" in lost and "ipytui --existing /k.json" in lost and "recover" in lost
    assert "still running" not in lost


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`ipytui --help` names every subcommand, the subcommands' own verbs included."""
    import argparse

    from ipytui.app import cli
    from ipytui.kernel.tools import kernelspec, keys

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("kernel", "list", "stop", "recover"):
        assert f"ipytui {command}" in text, command
    for prog, parser in (("kernelspec", kernelspec.build_parser()), ("keys", keys.build_parser())):
        verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        assert verbs, prog
        for verb in verbs:
            assert (f"ipytui {prog} {verb}" in text
                    or re.search(rf"ipytui {prog} \S*\b{verb}\b", text)), (prog, verb, text)
