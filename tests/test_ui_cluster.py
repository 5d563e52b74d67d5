"""The cluster in the UI: a real ipytui kernel started with ``--cluster new:2``
(a local ipyparallel controller and two stock engines, owned by the kernel),
under the Pilot; and the installed ``ipytui --cluster new:2`` in tmux, whose
kernel leaves no cluster process behind when it shuts down.

One kernel and cluster serve the Pilot tests (engines are slow to start on a
loaded machine); the engine-killing test runs last.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from ipytui.widgets.cluster_pane import ClusterPane
from test_ui_support import SIZE, KernelProcess, make_app, run_cell, wait_for, wait_ready
from test_ui_tmux import Terminal, ipytui_command, terminal_env

pytest.importorskip("ipyparallel")

pytestmark = pytest.mark.timeout(400)

CLUSTER_TIMEOUT = 240.0  # two engines starting on two shared cores
CLUSTER_ARGV = [sys.executable, "-m", "ipytui.kernel", "--cluster", "new:2", "-f"]
PANE_TRIES = 10  # %px runs until the pane's fresh subscription has reached the Hub


@pytest.fixture(scope="module")
def cluster_kernel(tmp_path_factory: pytest.TempPathFactory):
    kernel = KernelProcess(tmp_path_factory.mktemp("cluster"), argv=CLUSTER_ARGV).start()
    yield kernel
    if kernel.proc is not None and kernel.proc.poll() is None:
        kernel.proc.send_signal(signal.SIGTERM)  # a clean stop: the cluster goes with it
        with contextlib.suppress(subprocess.TimeoutExpired):
            kernel.proc.wait(timeout=60)
    kernel.stop()


def engine_pids(text: str, label: str = "pid") -> dict[int, int]:
    """``[stdout:1] pid 4242`` lines -> {1: 4242}."""
    found = re.findall(rf"\[stdout:(\d+)\] {label} (\d+)", text)
    return {int(engine): int(pid) for engine, pid in found}


async def wait_engines(pilot, text: str) -> None:
    status = pilot.app.main_screen.status
    await wait_for(
        pilot, lambda: text in status.plain, f"{text!r} in the status bar", timeout=CLUSTER_TIMEOUT
    )


async def px_until_in_pane(
    pilot, pane: ClusterPane, code: str, label: str, engine: int
) -> dict[int, int]:
    """Run ``code`` (printing ``label <pid>`` per engine) until the pane shows the
    engine's line: the pane subscribes to the Hub as it opens, and a subscription
    takes effect a moment later (ZeroMQ's slow joiner)."""
    for _ in range(PANE_TRIES):
        cell = await run_cell(pilot, code)
        pids = engine_pids("\n".join(o.plain for o in cell.outputs()), label)
        assert set(pids) == {0, 1}, pids
        try:
            await wait_for(
                pilot,
                lambda line=f"{label} {pids[engine]}": line in pane.plain,
                f"engine {engine}'s line in the pane",
                timeout=5,
            )
            return pids
        except AssertionError:
            continue
    raise AssertionError(f"engine {engine}'s output never reached the pane:\n{pane.plain}")


async def test_engines_listed_and_one_engines_stream_in_the_pane(cluster_kernel):
    app = make_app(cluster_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await wait_engines(pilot, "engines 0 up · 1 up")
        pane = screen.query_one(ClusterPane)
        assert not pane.is_open
        await pilot.press("f12")
        await wait_for(pilot, lambda: pane.is_open and pane.engine == 0, "the pane on engine 0")
        pids = await px_until_in_pane(
            pilot, pane, "%px import os; print('pid', os.getpid())", "pid", 0
        )
        assert pids[0] != pids[1]
        assert str(pids[1]) not in pane.plain  # one engine at a time
        assert "engine 0 · up" in str(pane.query_one("#cluster-title").render())

        await pilot.press("f12")
        await wait_for(pilot, lambda: pane.engine == 1, "the pane on engine 1")
        assert str(pids[0]) not in pane.plain
        await px_until_in_pane(pilot, pane, "%px print('again', os.getpid())", "again", 1)
        assert f"again {pids[0]}" not in pane.plain
        # back to engine 0: what it said while on screen is still there
        await pilot.press("f12")
        await wait_for(
            pilot,
            lambda: pane.engine == 0 and f"pid {pids[0]}" in pane.plain,
            "engine 0's earlier output",
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: not pane.is_open, "the pane closed")


async def test_px_after_a_crash_restored_from_a_snapshot(cluster_kernel):
    """The restored worker is a fork of the dead one: it connects to the cluster
    anew instead of using the Client it inherited (whose sockets would hang)."""
    app = make_app(cluster_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await wait_engines(pilot, "engines 0 up · 1 up")
        await run_cell(pilot, "%px print('before')")
        await run_cell(pilot, "kept = 42")
        cell = await run_cell(pilot, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
        assert cell.status == "died"
        await wait_for(pilot, lambda: screen.lifecycle == "ok", "the restored kernel")
        cell = await run_cell(pilot, "%px print('after', 6 * 7)")
        text = "\n".join(o.plain for o in cell.outputs())
        assert "[stdout:0] after 42" in text and "[stdout:1] after 42" in text, text
        cell = await run_cell(pilot, "print(kept)")
        assert "42" in "\n".join(o.plain for o in cell.outputs())


async def test_a_busy_engine_then_killed_shows_busy_then_dead(cluster_kernel):
    """After the crash above, so the watcher restarted in the restored worker is the
    one that tells."""
    app = make_app(cluster_kernel)  # joins late: the engines come from the journal's events
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await wait_engines(pilot, "engines 0 up · 1 up")
        cell = await run_cell(pilot, "%px import os; print('pid', os.getpid())")
        pids = engine_pids("\n".join(o.plain for o in cell.outputs()))
        await run_cell(pilot, "%px --targets 1 --noblock import time; time.sleep(600)")
        await wait_engines(pilot, "engines 0 up · 1 busy")
        os.kill(pids[1], signal.SIGKILL)
        await wait_engines(pilot, "engines 0 up · 1 dead")
        assert screen.status.query_one("#ks-engines").has_class("-dead")
        await pilot.press("f12", "f12")
        pane = screen.query_one(ClusterPane)
        await wait_for(pilot, lambda: pane.engine == 1, "the pane on the dead engine")
        assert "engine 1 · dead" in str(pane.query_one("#cluster-title").render())
        cell = await run_cell(pilot, "%px print('still', 6 * 7)")  # the live engine still serves
        assert "[stdout:0] still 42" in "\n".join(o.plain for o in cell.outputs())


def _cluster_processes(root: int) -> list[psutil.Process]:
    """ipyparallel processes (controller, engines, nannies) under ``root``."""
    try:
        below = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in below if "ipyparallel" in " ".join(_cmdline(p))]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def test_installed_ipytui_on_a_new_cluster_leaves_nothing_behind(tmp_path):
    term = Terminal(
        [*ipytui_command(), "--cluster", "new:2", "--shutdown-on-exit"], terminal_env(tmp_path)
    )
    supervisor = None
    try:
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        while "engines 0 up · 1 up" not in term.screen():
            assert time.monotonic() < deadline, f"no engines on screen:\n{term.screen()}"
            time.sleep(0.2)  # polling a terminal: there is no event to await
        supervisor = next(
            p
            for p in psutil.process_iter(["cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])
            and "ipytui.kernel" in p.info["cmdline"]
        )
        cluster = _cluster_processes(supervisor.pid)
        names = " ".join(" ".join(_cmdline(p)) for p in cluster)
        assert "controller" in names and names.count("engine") >= 2, names
        term.type("%px print('hello from', 6 * 7)")
        term.keys("Enter")
        term.wait_for("[stdout:1] hello from 42", "engine 1's output")
        term.keys("C-q")
        # The UI exits once the kernel has answered the shutdown; its goodbye line may
        # be gone with the pane (as in test_ui_tmux): what matters is what is left running.
        term.wait_for_any(("kernel shut down", "Pane is dead"), "the UI's exit")
        supervisor.wait(timeout=60)
        gone, alive = psutil.wait_procs(cluster, timeout=30)
        assert not alive, [(" ".join(_cmdline(p)), p.status()) for p in alive]
        security = tmp_path / "ipython" / "profile_default" / "security"
        assert not list(security.glob("cluster-*.json")), "ipyparallel's cluster record was left"
    finally:
        term.close()
        if supervisor is not None and supervisor.is_running():
            supervisor.kill()


@pytest.fixture(scope="module")
def curve_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running cluster of one engine with CurveZMQ on (IPP_ENABLE_CURVE), cluster id
    "" in a profile of its own: found by profile name as ``ipcluster start`` leaves it."""
    import ipyparallel as ipp
    from IPython.core.profiledir import ProfileDir

    root = tmp_path_factory.mktemp("curve")
    (root / "ipython").mkdir()
    profile = ProfileDir.create_profile_dir_by_name(str(root / "ipython"), "curvy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPP_ENABLE_CURVE", "1")
        cluster = ipp.Cluster(n=1, cluster_id="", profile_dir=profile.location, log_level=40)
        client = cluster.start_and_connect_sync(activate=False)
    client.wait_for_engines(1, timeout=CLUSTER_TIMEOUT)
    client.close()
    yield root, cluster
    cluster.stop_cluster_sync()


async def test_a_running_curve_cluster_by_profile_name(curve_cluster):
    root, cluster = curve_cluster
    client_file = root / "ipython" / "profile_curvy" / "security" / "ipcontroller-client.json"
    assert json.loads(client_file.read_text())["curve_serverkey"], "the cluster has no Curve key"
    kernel = KernelProcess(root, argv=[*CLUSTER_ARGV[:3], "--cluster", "curvy", "-f"])
    kernel.env["IPYTHONDIR"] = str(root / "ipython")  # where the profile is
    kernel.start()
    try:
        app = make_app(kernel)
        async with app.run_test(size=SIZE) as pilot:
            await wait_ready(pilot)
            await wait_engines(pilot, "engines 0 up")
            screen = app.main_screen
            await pilot.press("f12")
            pane = screen.query_one(ClusterPane)
            await wait_for(pilot, lambda: pane.engine == 0, "the pane on engine 0")
            assert screen.cluster.feed.encrypted  # the pane's socket speaks Curve, as the Hub
            line = "[stdout:0] curve"
            for _ in range(PANE_TRIES):
                cell = await run_cell(pilot, "%px print('curve', 6 * 7)")
                assert line + " 42" in "\n".join(o.plain for o in cell.outputs())
                try:
                    await wait_for(pilot, lambda: "curve 42" in pane.plain, "the pane", timeout=5)
                    break
                except AssertionError:
                    continue
            assert "curve 42" in pane.plain
    finally:
        kernel.proc.send_signal(signal.SIGTERM)
        kernel.proc.wait(timeout=60)
        kernel.stop()
    # joined, not started: the cluster outlives the kernel
    assert cluster.engines and all(proc.is_running() for proc in _engine_processes(cluster))


def _engine_processes(cluster) -> list[psutil.Process]:
    pids = [launcher.pid for es in cluster.engines.values() for launcher in es.launchers.values()]
    return [psutil.Process(pid) for pid in pids]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("new:0", "between 1 and 256 engines"),
        ("new:two", "takes a number of engines"),
        ("nosuchprofile", "no IPython profile 'nosuchprofile'"),
        ("missing/ipcontroller-client.json", "no connection file"),
        ("BAD_JSON", "is not JSON"),
        ("ENGINE_FILE", "that is the engines' file"),
    ],
)
def test_bad_cluster_values_end_with_a_sentence_and_code_2(tmp_path, value, says):
    (tmp_path / "ipython").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "ipcontroller-engine.json").write_text('{"interface": "tcp://127.0.0.1"}')
    value = {
        "BAD_JSON": str(tmp_path / "bad.json"),
        "ENGINE_FILE": str(tmp_path / "ipcontroller-engine.json"),
    }.get(value, value)
    result = subprocess.run(
        [*ipytui_command(), "--cluster", value],
        capture_output=True,
        text=True,
        env={**os.environ, **terminal_env(tmp_path)},
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "runtime").glob("kernel-*.json"))  # no kernel was started
