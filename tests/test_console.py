"""``jupyter console --kernel ipytui`` in a real pseudo-terminal, driven with pexpect."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import psutil
import pytest
from ipytui.kernel.tools import kernelspec

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 60
SGR = r"(?:\x1b\[[0-9;]*m)*"  # colour codes prompt_toolkit puts inside prompts


def prompt(kind: str, n: int) -> str:
    """A regex for ``In [n]`` / ``Out[n]`` with any colour codes around the number."""
    return rf"{kind} ?\[{SGR}{n}{SGR}\]"


@pytest.fixture
def console_env(tmp_path: Path) -> dict[str, str]:
    kernelspec.install(prefix=str(tmp_path / "prefix"))
    return {
        **os.environ,
        "JUPYTER_PATH": str(tmp_path / "prefix" / "share" / "jupyter"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTUI_DATA_DIR": str(tmp_path / "ipytui"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "TERM": "xterm",
        "COLUMNS": "100",
        "LINES": "30",
    }


def jupyter_console_argv() -> list[str]:
    exe = shutil.which("jupyter-console", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "jupyter_console"]


@contextlib.contextmanager
def console(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[pexpect.spawn, Path]]:
    """``jupyter console --kernel ipytui`` under pexpect, its screen logged to a file; a
    failed run leaves neither the console nor the kernel it launched behind."""
    argv = [*jupyter_console_argv(), "--kernel", "ipytui"]
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(tmp_path),
                          dimensions=(30, 100), encoding="utf-8", timeout=TIMEOUT)
    log = tmp_path / "console.log"
    child.logfile_read = open(log, "w")  # noqa: SIM115 - closed below
    try:
        yield child, log
    finally:
        if child.isalive():
            # A failed run must not leave the kernel it launched behind.
            kernels: list[psutil.Process] = []
            with contextlib.suppress(psutil.NoSuchProcess):
                kernels = psutil.Process(child.pid).children(recursive=True)
            child.terminate(force=True)
            for proc in kernels:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        child.logfile_read.close()


def test_console_computes_6_times_7(console_env: dict[str, str], tmp_path: Path) -> None:
    with console(tmp_path, console_env) as (child, log):
        child.expect("ipytui")  # the kernel's banner, from its kernel_info_reply
        child.expect(prompt("In", 1))
        child.send("import os; print('pids', os.getpid(), os.getppid())\r")
        child.expect(r"pids (\d+) (\d+)")
        pids = [int(child.match.group(1)), int(child.match.group(2))]
        child.expect(prompt("In", 2))
        child.send("6*7\r")
        child.expect(prompt("Out", 2) + r":\s*" + SGR + "42")
        child.expect(prompt("In", 3))
        child.sendcontrol("d")
        child.expect(re.compile(r"exit", re.IGNORECASE))
        child.send("y\r")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, log.read_text(errors="replace")
        # The console started the kernel, so it shut it down: worker and supervisor are gone.
        procs = []
        for pid in pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(procs, timeout=TIMEOUT)
        assert not alive, f"kernel processes still running: {alive}"


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_bare_exit_leaves_the_console(console_env: dict[str, str], tmp_path: Path, word: str) -> None:
    """A bare ``exit`` (IPython's autocall) sends ask_exit: the console ends, as with ipykernel."""
    with console(tmp_path, console_env) as (child, log):
        child.expect(prompt("In", 1))
        child.send("import os; print('pid', os.getppid())\r")
        child.expect(r"pid (\d+)")
        supervisor = psutil.Process(int(child.match.group(1)))
        child.expect(prompt("In", 2))
        child.send(f"{word}\r")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, log.read_text(errors="replace")
        assert "Use exit()" not in log.read_text(errors="replace")
        # The console owned the kernel (keepkernel False), so it stopped it.
        _, alive = psutil.wait_procs([supervisor], timeout=TIMEOUT)
        assert not alive


def test_console_segfault_report_once_no_log_and_exit(console_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """A segfault prints the recovery report once and no kernel log line; exit() leaves
    as with ipykernel (the console shuts down the kernel it started)."""
    env = {k: v for k, v in console_env.items() if k not in ("USER", "LOGNAME")}
    with console(tmp_path, env) as (child, log):
        child.expect(prompt("In", 1))
        child.send("kept = 41\r")
        child.expect(prompt("In", 2))
        child.send("import ctypes; ctypes.string_at(0)\r")
        child.expect(r"KernelDied")
        child.expect(prompt("In", 3))
        crash_output = child.before
        child.send("kept + 1\r")
        child.expect(prompt("Out", 3) + r":\s*" + SGR + "42")
        child.expect(prompt("In", 4))
        child.send("exit()\r")
        child.expect(pexpect.EOF)
        child.close()
        text = log.read_text(errors="replace")
        assert child.exitstatus == 0, text
        # The report once, as the error's traceback; no second copy as display_data.
        assert text.count("KernelDied: segmentation fault (SIGSEGV)") == 1, text
        assert text.count("Restored the state after cell [1]") == 1, text
        assert "a cell run by a Jupyter client" in text, text  # no $USER: jupyter_client's default
        assert "a cell run by username" not in text
        # The kernel's own log reaches no terminal without --debug.
        assert "ipytui-kernel[" not in text and "WARNING" not in text, text
        assert "owning kernel, cannot keep it alive" not in text, text
        assert "segmentation fault" in crash_output
        logs = list((tmp_path / "ipytui" / "logs").glob("kernel-*.log"))
        assert any("died: segmentation fault" in p.read_text() for p in logs), logs
