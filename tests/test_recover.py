"""After kill -9 of the supervisor: ``ipytui list``, ``ipytui recover``, ``ipytui stop``.

Each test runs a real kernel, waits for its pickle checkpoint, kills the
supervisor and its worker with SIGKILL, then drives the CLI as a subprocess
with the same data and runtime dirs, and attaches to the kernel it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import IPYTUI_ARGV
from ipytui.kernel.protocol.connection import read_connection_file
from ipytui.kernel.supervisor.journal_writer import JournalWriter as Journal
from ipytui.kernel.worker import checkpoint

pytestmark = pytest.mark.timeout(60)

T = 30.0
SETUP = "x = 41\nwords = ['a', 'b']\ndef double(v):\n    return v * 2\ngen = (i for i in range(3))"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment start_kernel gives its kernels (same data and runtime dirs)."""
    return {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "IPYTUI_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def recovered(tmp_path: Path) -> Iterator[list[int]]:
    """Pids of kernels the CLI started; killed at teardown if a test left them."""
    pids: list[int] = []
    yield pids
    for lock in (tmp_path / "data" / "locks").glob("*.lock"):
        pid = json.loads(lock.read_text())["pid"]
        if pid not in pids:
            pids.append(pid)
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs.extend([proc, *proc.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipytui.app.cli", *args], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=T + 30)


async def _until(condition, what: str) -> None:
    deadline = time.monotonic() + T
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _checkpoint_count(path: Path) -> int:
    try:
        return int(checkpoint.read(path)["execution_count"])
    except (OSError, ValueError, EOFError):
        return -1


async def kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path: Path,
                                         after: str | None = None, running: str | None = None,
                                         owned: bool = False):
    """Run SETUP, wait for its checkpoint, optionally run more, then kill -9 everything.

    ``owned``: the kernel owns its connection file, as the kernels ``ipytui`` starts do.
    Returns (kernel id, execution count of the checkpoint).
    """
    info, proc = start_kernel([*IPYTUI_ARGV[:-1], "--owns-connection-file", "-f"] if owned
                              else IPYTUI_ARGV)
    client = await make_client(info)
    kernel_id = (await client.kernel_info(timeout=T))["ipytui"]["kernel_id"]
    setup = await client.execute(SETUP, timeout=T)
    assert setup.status == "ok"
    ckpt = tmp_path / "data" / "checkpoints" / f"{kernel_id}.pickle"
    await _until(lambda: _checkpoint_count(ckpt) >= setup.execution_count, "the checkpoint")
    journal = Journal(tmp_path / "data" / "journal.sqlite3")
    lock = tmp_path / "data" / "locks" / f"{kernel_id}.lock"
    session = json.loads(lock.read_text())["journal_session"]
    if after is not None:
        assert (await client.execute(after, timeout=T)).status == "ok"
        # The journal records a cell off the supervisor's loop, moments later.
        await _until(lambda: [c["status"] for c in journal.cells_since(session, setup.execution_count)]
                     == ["ok"], "the cell's end in the journal")
    if running is not None:
        client.send("shell", "execute_request", {"code": running, "silent": False})
        await _until(lambda: journal.unfinished_cells(session), "the running cell in the journal")
    journal.close()
    family = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(timeout=T)
    _, alive = psutil.wait_procs(family, timeout=T)
    assert not alive
    # A snapshot forked after `after` must not have checkpointed it: it is to be replayed.
    assert _checkpoint_count(ckpt) == setup.execution_count
    return kernel_id, setup.execution_count


def _new_connection_file(output: str) -> Path:
    match = re.search(r"ipytui --existing (\S+)", output)
    assert match, output
    return Path(match.group(1))


async def _attach(make_client, path: Path, recovered: list[int], tmp_path: Path):
    kernel_id = path.stem.removeprefix("kernel-")
    lock = json.loads((tmp_path / "data" / "locks" / f"{kernel_id}.lock").read_text())
    recovered.append(lock["pid"])
    return await make_client(read_connection_file(path)), kernel_id, lock["pid"]


async def test_recover_restores_checkpointed_variables(start_kernel, make_client, tmp_path, env,
                                                       recovered) -> None:
    old_id, _ = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path,
                                                     after="y = x + 1")
    listing = cli(env, "list")
    assert re.search(rf"^{old_id}\s+\d+\s+\S+\s+stale\s", listing.stdout, re.M), listing.stdout

    result = cli(env, "recover", "--yes", "--no-replay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "y = x + 1" in result.stdout  # listed, not run
    assert "Not replayed" in result.stdout, result.stdout
    assert not (tmp_path / "data" / "locks" / f"{old_id}.lock").exists()
    assert (tmp_path / "kernel-0.json").exists()  # not the kernel's own file: left to its owner
    path = _new_connection_file(result.stdout)
    client, kernel_id, pid = await _attach(make_client, path, recovered, tmp_path)
    check = await client.execute("print(x, words, double(3))", timeout=T)
    assert check.status == "ok" and check.text == "41 ['a', 'b'] 6\n"
    assert (await client.execute("y", timeout=T)).error[0] == "NameError"
    assert (await client.execute("gen", timeout=T)).error[0] == "NameError"  # not picklable
    lock = json.loads((tmp_path / "data" / "locks" / f"{kernel_id}.lock").read_text())
    assert lock["pid"] == pid and lock["connection_file"] == str(path)
    # Every UI that opens on it is told what came back: the journal keeps the event.
    journal = Journal(tmp_path / "data" / "journal.sqlite3")
    await _until(lambda: journal.recent_events(kernel_id), "the recovered event in the journal")
    (event,) = journal.recent_events(kernel_id)
    journal.close()
    assert (event["event"], event["method"]) == ("recovered", "checkpoint")
    assert {"x", "words", "double"} <= set(event["names"]) and "gen" in event["lost"]
    assert event["status"]["worker_pid"] != pid  # the worker's, not the supervisor's


async def _await_listed(env: dict[str, str], pattern: str, timeout: float = T) -> None:
    """Until ``ipytui list`` shows a line matching pattern (the lock file lags up to 0.5 s)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, listing := cli(env, "list").stdout, re.M):
        assert time.monotonic() < deadline, listing
        await asyncio.sleep(0.1)


async def test_list_and_stop_a_running_kernel(start_kernel, make_client, env) -> None:
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    kernel_id = (await client.kernel_info(timeout=T))["ipytui"]["kernel_id"]
    running = asyncio.ensure_future(client.execute("import time; time.sleep(30)", timeout=60))
    await _await_listed(env, rf"^{kernel_id}\s+{proc.pid}\s+\S+\s+alive busy\s+1\s")
    await client.interrupt(timeout=T)
    assert (await running).error[0] == "KeyboardInterrupt"
    await _await_listed(env, rf"^{kernel_id}\s+{proc.pid}\s+\S+\s+alive idle\s+1\s")
    stopped = cli(env, "stop", kernel_id)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert proc.wait(timeout=T) == 0
    assert "No ipytui kernels" in cli(env, "list").stdout


async def test_recover_replays_cells_after_the_checkpoint(start_kernel, make_client, tmp_path, env,
                                                          recovered) -> None:
    _, count = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path,
                                                    after="y = x + 1\nwords.append('c')")
    result = cli(env, "recover", "--yes", "--replay")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = result.stdout.index("can be replayed")
    assert result.stdout.index(f"[{count + 1}] replayed as") > listed
    path = _new_connection_file(result.stdout)
    client, _, _ = await _attach(make_client, path, recovered, tmp_path)
    check = await client.execute("print(x, y, words)", timeout=T)
    assert check.text == "41 42 ['a', 'b', 'c']\n", check.reply.content


async def test_recover_list_names_the_stale_kernel_and_the_cell(start_kernel, make_client,
                                                                tmp_path, env) -> None:
    running = "import time\ntime.sleep(60)"
    old_id, count = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path,
                                                         running=running)
    result = cli(env, "recover", "--list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Kernel {old_id} went down uncleanly" in out
    assert f"while running cell [{count + 1}]" in out and "import time" in out
    assert f"checkpoint: after cell [{count}]" in out
    assert "double, words, x" in out and "not in the checkpoint: gen" in out
    assert re.search(rf"\[{count + 1}\] running\s+not replayed", out), out
    # --list changes nothing.
    assert (tmp_path / "data" / "locks" / f"{old_id}.lock").exists()
    assert (tmp_path / "data" / "checkpoints" / f"{old_id}.pickle").exists()


def test_nothing_to_recover(env) -> None:
    result = cli(env, "recover", "--yes")
    assert result.returncode == 0 and "nothing to recover" in result.stdout
    assert cli(env, "recover", "nope").returncode == 2
    assert cli(env, "stop", "nope").returncode == 2


async def test_ipytui_start_offers_to_recover_a_stale_kernel(start_kernel, make_client, tmp_path,
                                                              env, recovered) -> None:
    """The next `ipytui` start finds the stale lock, says what went down and offers recovery."""
    import pexpect

    old_id, _ = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path, owned=True)
    old_file = tmp_path / "kernel-0.json"  # written by the start_kernel fixture
    assert old_file.exists()
    child = pexpect.spawn(sys.executable, ["-m", "ipytui.app.cli", "--shutdown-on-exit"],
                          env={**env, "TERM": "xterm-256color"}, dimensions=(36, 120),
                          encoding="utf-8", timeout=T)
    try:
        await asyncio.to_thread(child.expect, old_id)
        await asyncio.to_thread(child.expect, r"Recover it")
        child.sendline("y")
        locks_dir = tmp_path / "data" / "locks"
        await _until(lambda: [p.stem for p in locks_dir.glob("*.lock")] not in ([], [old_id])
                     and not (locks_dir / f"{old_id}.lock").exists(),
                     "the restored kernel's lock, and the stale one gone")
        locks = list(locks_dir.glob("*.lock"))
        assert len(locks) == 1 and locks[0].stem != old_id
        path = Path(json.loads(locks[0].read_text())["connection_file"])
        client, _, _ = await _attach(make_client, path, recovered, tmp_path)
        check = await client.execute("print(x, double(4))", timeout=T)
        assert check.text == "41 8\n"
        assert not old_file.exists()  # nothing listens there any more: it would only mislead
    finally:
        child.sendcontrol("q")
        await asyncio.to_thread(child.expect, [pexpect.EOF, pexpect.TIMEOUT])
        child.close(force=True)


def test_kernel_ids_are_found_by_a_unique_prefix_with_or_without_ipytui() -> None:
    """`ipytui stop 35e4d` finds ipytui-35e4d…; an ambiguous prefix names its matches."""
    from ipytui.kernel.supervisor.lockfile import KernelLock
    from ipytui.kernel.tools.manage import find_lock, no_such_kernel

    locks = [KernelLock(kernel_id=kid, pid=1, host="h", started=0.0,
                        connection_file=f"/run/kernel-{kid}.json")
             for kid in ("ipytui-35e4d599ad6a", "ipytui-35e4e000aaaa", "965ffa3c-uuid")]
    assert find_lock(locks, "35e4d") is locks[0]
    assert find_lock(locks, "ipytui-35e4e") is locks[1]
    assert find_lock(locks, "965ff") is locks[2]
    assert find_lock(locks, "kernel-965ffa3c-uuid.json") is locks[2]
    assert find_lock(locks, "35e4") is None
    assert "matches 2 kernels" in no_such_kernel("stop", locks, "35e4")
    assert "no kernel 'zzz'" in no_such_kernel("stop", locks, "zzz")
    assert find_lock(locks, "") is None
