"""%cluster / %px / %%px / %autopx / %pxresult / %pxconfig against a real
ipyparallel cluster (controller + 2 stock ``ipengine``s), driven through
jupyter_client's KernelManager on the ipytui kernelspec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ipytui.kernel.tools import kernelspec
from jupyter_client.blocking.client import BlockingKernelClient
from test_jupyter_client import iopub_until, run, start, stop, stream_text

ipp = pytest.importorskip("ipyparallel")

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("parallel")
    prefix = root / "prefix"
    kernelspec.install(prefix=str(prefix))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTUI_DATA_DIR", str(root / "ipytui"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        yield root


@pytest.fixture(scope="module")
def cluster_file(jupyter_env: Path) -> Iterator[Path]:
    """A local cluster of two stock engines; its client connection file."""
    cluster = ipp.Cluster(n=2, log_level=40)
    client = cluster.start_and_connect_sync(activate=False)
    client.wait_for_engines(2, timeout=120)
    client.close()
    found = sorted(Path(cluster.profile_dir, "security").glob("ipcontroller-*client.json"))
    assert found, "the controller wrote no client connection file"
    yield found[-1]
    cluster.stop_cluster_sync()


@pytest.fixture(scope="module")
def kc(jupyter_env: Path, cluster_file: Path) -> Iterator[BlockingKernelClient]:
    km, client = start()
    reply, seen = run(client, f"%cluster connect {cluster_file}", timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    yield client
    run(client, "%cluster stop")
    stop(km, client)


def lines_of(text: str, label: str) -> list[str]:
    return [line[len(label) :].strip() for line in text.splitlines() if line.startswith(label)]


def test_cluster_lists_its_engines(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%cluster")
    text = stream_text(seen)
    assert reply["content"]["status"] == "ok"
    assert "2 engines" in text and "engine 0:" in text and "engine 1:" in text


def test_px_output_arrives_labelled_by_engine(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%px import os; print('pid', os.getpid())")
    text = stream_text(seen)
    assert reply["content"]["status"] == "ok", reply["content"]
    pids = {eid: lines_of(text, f"[stdout:{eid}]") for eid in (0, 1)}
    assert all(len(found) == 1 and found[0].startswith("pid ") for found in pids.values()), repr(
        text
    )
    assert pids[0] != pids[1]  # two engine processes, not one


def test_cell_px_shows_each_engines_result(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%%px\nanswer = 6 * 7\nanswer")
    text = stream_text(seen)
    assert reply["content"]["status"] == "ok"
    results = {
        line[4:].split(":")[0]: line.split("]: ", 1)[1]
        for line in text.splitlines()
        if line.startswith("Out[")
    }
    assert results == {"0": "42", "1": "42"}, text


def test_a_failing_engine_task_ends_the_cell_with_its_traceback(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%px --targets 0 1 / 0")
    content = reply["content"]
    assert content["status"] == "error", content
    assert content["ename"] == "RemoteError"
    assert "engine 0: ZeroDivisionError" in content["evalue"]
    stderr = stream_text(seen, "stderr")
    assert "[0:execute] ZeroDivisionError" in stderr
    assert "[1:execute]" not in stderr
    reply, _ = run(kc, "%px print('still serving')")
    assert reply["content"]["status"] == "ok"


def test_targets_and_pxconfig_choose_the_engines(kc: BlockingKernelClient) -> None:
    _, seen = run(kc, "%px --targets 1 print('only one')")
    text = stream_text(seen)
    assert lines_of(text, "[stdout:1]") == ["only one"] and not lines_of(text, "[stdout:0]")
    reply, seen = run(kc, "%pxconfig --targets 0")
    assert "targets: 0" in stream_text(seen)
    _, seen = run(kc, "%px print('configured')")
    assert lines_of(stream_text(seen), "[stdout:0]") == ["configured"]
    assert not lines_of(stream_text(seen), "[stdout:1]")
    run(kc, "%pxconfig --targets all")


def test_noblock_then_pxresult(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%px --noblock print('later')")
    assert reply["content"]["status"] == "ok"
    assert "%pxresult" in stream_text(seen)
    _, seen = run(kc, "%pxresult")
    text = stream_text(seen)
    assert lines_of(text, "[stdout:0]") == ["later"] and lines_of(text, "[stdout:1]") == ["later"]


def test_autopx_sends_every_cell_to_the_engines(kc: BlockingKernelClient) -> None:
    reply, seen = run(kc, "%autopx")
    assert "enabled" in stream_text(seen)
    try:
        run(kc, "remote_only = 'on the engines'")
    finally:
        _, seen = run(kc, "%autopx")
    assert "disabled" in stream_text(seen)
    reply, _ = run(kc, "remote_only")
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "NameError"
    _, seen = run(kc, "%px print(remote_only)")
    assert lines_of(stream_text(seen), "[stdout:0]") == ["on the engines"]


def test_output_streams_while_the_task_runs(kc: BlockingKernelClient, tmp_path: Path) -> None:
    """The first line shows while the engines still wait for a gate the test opens."""
    gate = tmp_path / "gate"
    code = (
        "%px import os, time; print('first', flush=True); "
        f"[time.sleep(0.02) for _ in iter(lambda: os.path.exists({str(gate)!r}), True)]; "
        "print('second')"
    )
    msg_id = kc.execute(code)
    first = iopub_until(
        kc,
        lambda m: (
            m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] == "stream"
            and "first" in m["content"]["text"]
        ),
    )
    assert first["content"]["text"].startswith("[stdout:")
    assert not kc.shell_channel.msg_ready()  # the task is still running
    gate.touch()
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"


def test_without_a_cluster_px_says_what_to_do(jupyter_env: Path) -> None:
    km, client = start()
    try:
        reply, _ = run(client, "%px 1 + 1")
        assert reply["content"]["ename"] == "UsageError"
        assert "%cluster start" in reply["content"]["evalue"]
        reply, _ = run(client, "%cluster connect /nonexistent/ipcontroller-client.json")
        assert reply["content"]["ename"] == "UsageError"
        assert "no connection file" in reply["content"]["evalue"]
    finally:
        stop(km, client)


def test_cluster_start_and_stop_from_the_kernel(jupyter_env: Path) -> None:
    km, client = start()
    try:
        reply, seen = run(client, "%cluster start 1", timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "started by this kernel" in stream_text(seen)
        _, seen = run(client, "%px print(40 + 2)")
        assert lines_of(stream_text(seen), "[stdout:0]") == ["42"]
        _, seen = run(client, "%cluster stop", timeout=60)
        assert "left the cluster" in stream_text(seen)
    finally:
        stop(km, client)


def test_interrupt_reaches_the_engines(kc: BlockingKernelClient) -> None:
    """Ctrl+C on a %px cell ends it, and the engines are free for the next one."""
    msg_id = kc.execute("%px import time; print('looping', flush=True); time.sleep(3600)")
    iopub_until(
        kc,
        lambda m: (
            m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] == "stream"
            and "looping" in m["content"]["text"]
        ),
    )
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    reply, seen = run(kc, "%px print('free again')", timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert lines_of(stream_text(seen), "[stdout:0]") == ["free again"], [m["content"] for m in seen]


def test_cluster_file_at_start_serves_the_first_cell(jupyter_env: Path, cluster_file: Path) -> None:
    """``--cluster FILE``: the worker joins beside its start; a ``%px`` sent as the
    very first cell waits for the join instead of finding no cluster."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="ipytui")
    km.start_kernel(extra_arguments=["--cluster", str(cluster_file)])
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply, seen = run(client, "%px print('first')", timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
        text = stream_text(seen)
        assert lines_of(text, "[stdout:0]") == ["first"], text
        assert lines_of(text, "[stdout:1]") == ["first"], text
    finally:
        stop(km, client)
