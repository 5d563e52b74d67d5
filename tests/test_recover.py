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
from test_ui_tmux import Terminal, ipytui_command, terminal_env

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
                                         owned: bool = False, flags: tuple[str, ...] = ()):
    """Run SETUP, wait for its checkpoint, optionally run more, then kill -9 everything.

    ``owned``: the kernel owns its connection file, as the kernels ``ipytui`` starts do.
    Returns (kernel id, execution count of the checkpoint).
    """
    own = ("--owns-connection-file",) if owned else ()
    info, proc = start_kernel([*IPYTUI_ARGV[:-1], *flags, *own, "-f"])
    client = await make_client(info)
    kernel_id = (await client.kernel_info(timeout=T))["ipytui"]["kernel_id"]
    setup = await client.execute(SETUP, timeout=T)
    assert setup.status == "ok"
    ckpt = tmp_path / "data" / "checkpoints" / f"{kernel_id}.pickle"
    await _until(lambda: _checkpoint_count(ckpt) >= setup.execution_count, "the checkpoint")
    journal = Journal(tmp_path / "data" / "journal.sqlite3")
    lock = tmp_path / "data" / "locks" / f"{kernel_id}.lock"
    session = json.loads(lock.read_text())["journal_session"]
    setup_checkpoint = ckpt.read_bytes()
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
    # A checkpoint that lags behind the journal (a power loss while it was written):
    # the checkpoint of `after` is put back to SETUP's, so `after` is to be replayed.
    assert _checkpoint_count(ckpt) >= setup.execution_count
    ckpt.write_bytes(setup_checkpoint)
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
    assert "1 client(s) attached; launched by you" in cli(env, "list").stdout
    await client.stop()  # no client left: an orphan, and `ipytui list` says so
    await _await_listed(env, rf"^{kernel_id}\s+{proc.pid}\s+\S+\s+alive idle\s+0\s")
    assert re.search(r"orphan: no client for \S+; culled after 4h00m alone", cli(env, "list").stdout)
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


async def test_ipytui_start_offers_a_stale_kernel_inside_the_ui(start_kernel, make_client, tmp_path,
                                                               env, recovered) -> None:
    """The UI comes up at once on a fresh kernel and offers the stale one; answering recovers."""
    old_id, _ = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path, owned=True)
    old_file = tmp_path / "kernel-0.json"  # written by the start_kernel fixture
    assert old_file.exists()
    term = Terminal(ipytui_command(), terminal_env(tmp_path))
    try:
        screen = await asyncio.to_thread(term.wait_for, "Recover (r)", "the offer in the UI")
        assert old_id in screen and "went down uncleanly" in screen
        term.keys("r")
        await asyncio.to_thread(term.wait_for, "Recovered kernel", "the recovery's notice")
        term.type("print(x, double(4))")
        term.keys("Enter")
        await asyncio.to_thread(term.wait_for, "41 8", "the restored variables in the UI")
        locks_dir = tmp_path / "data" / "locks"
        # The fresh kernel the UI started first is shut down: only the restored one is left.
        await _until(lambda: len(list(locks_dir.glob("*.lock"))) == 1, "one kernel left")
        (lock,) = locks_dir.glob("*.lock")
        assert lock.stem != old_id
        recovered.append(json.loads(lock.read_text())["pid"])
        assert not old_file.exists()  # nothing listens there any more: it would only mislead
    finally:
        term.close()


async def test_a_kernel_its_manager_killed_is_listed_and_not_offered(start_kernel, make_client,
                                                                     tmp_path, env, recovered) -> None:
    """A kernelspec kernel (--exit-on-restart) killed by jupyter_client, nothing new since its
    checkpoint: `ipytui list` says its manager stopped it, and the UI does not ask about it."""
    old_id, _ = await kernel_killed_after_checkpoint(start_kernel, make_client, tmp_path,
                                                     flags=("--exit-on-restart",))
    listing = cli(env, "list").stdout
    assert re.search(rf"^{old_id}\s+\d+\s+\S+\s+stopped\s", listing, re.M), listing
    assert "stopped by its manager" in listing
    term = Terminal(ipytui_command(), terminal_env(tmp_path))
    try:
        screen = await asyncio.to_thread(term.wait_for, "not offered", "the note on the skipped kernel")
        assert "Recover (r)" not in screen
        term.type("6 * 7")
        term.keys("Enter")
        await asyncio.to_thread(term.wait_for, "Out[1]: 42", "a usable UI, no dialog in the way")
    finally:
        term.close()
        for lock in (tmp_path / "data" / "locks").glob("*.lock"):
            recovered.append(json.loads(lock.read_text())["pid"])


async def test_an_orphan_is_culled_and_recover_brings_it_back(start_kernel, make_client, tmp_path,
                                                             env, recovered) -> None:
    """No client for --cull-idle-after seconds: checkpoint, clean exit, lock kept; recoverable."""
    # No snapshots, so no background checkpoint: the one recovered is the cull's own.
    info, proc = start_kernel([*IPYTUI_ARGV[:-1], "--cull-idle-after", "3", "--no-snapshots", "-f"])
    client = await make_client(info)
    kernel_id = (await client.kernel_info(timeout=T))["ipytui"]["kernel_id"]
    assert (await client.execute(SETUP, timeout=T)).status == "ok"
    assert (await client.execute("y = x + 1", timeout=T)).status == "ok"
    await client.stop()  # the last client leaves: the kernel is an orphan now
    assert await asyncio.to_thread(proc.wait, T) == 0  # it stopped itself, cleanly
    lock = json.loads((tmp_path / "data" / "locks" / f"{kernel_id}.lock").read_text())
    assert lock["ended"] == "culled"
    assert _checkpoint_count(Path(lock["checkpoint"])) == 2  # written at the cull, y included
    listing = cli(env, "list").stdout
    assert re.search(rf"^{kernel_id}\s+\d+\s+\S+\s+culled\s", listing, re.M), listing
    assert "culled after 3s without clients" in listing

    result = cli(env, "recover", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "was culled" in result.stdout
    client, _, _ = await _attach(make_client, _new_connection_file(result.stdout), recovered, tmp_path)
    check = await client.execute("print(x, y, double(3))", timeout=T)
    assert check.status == "ok" and check.text == "41 42 6\n"


def test_offered_only_when_work_would_be_lost() -> None:
    from ipytui.kernel.supervisor.lockfile import KernelLock
    from ipytui.kernel.tools.recover import Wreck, offerable

    def wreck(launched_by: str, after: list) -> Wreck:
        lock = KernelLock("k", 1, "h", 0.0, "f", launched_by=launched_by)
        return Wreck(lock, after=after)

    assert offerable(wreck("user", []))
    assert not offerable(wreck("manager", []))
    assert offerable(wreck("manager", [{"execution_count": 3, "status": "ok", "code": "y = 1"}]))


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
