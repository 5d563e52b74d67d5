"""Helpers for the UI tests (test_ui*.py); this module holds no tests.

``UI_KERNEL_ARGV`` is the one switch between the kernels the UI tests run
against: ipykernel today, ``IPYTUI_KERNEL_ARGV`` once ours is the default.
``KernelProcess`` runs that kernel on a fixed connection file and, when
asked, starts it again whenever it exits: ipykernel has no supervisor, so a
restart request (or a kill) would otherwise leave nothing to talk to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.connection import (
    ConnectionInfo,
    new_connection_info,
    write_connection_file,
)

IPYKERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f"]
IPYTUI_KERNEL_ARGV = [sys.executable, "-m", "ipytui.kernel", "-f"]
# The one switch: the UI tests run against our kernel; IPYTUI_UI_TEST_KERNEL=ipykernel
# runs them against ipykernel (a foreign kernel the UI must also serve).
UI_KERNEL_ARGV = (
    IPYKERNEL_ARGV if os.environ.get("IPYTUI_UI_TEST_KERNEL") == "ipykernel" else IPYTUI_KERNEL_ARGV
)
USES_IPYKERNEL = UI_KERNEL_ARGV is IPYKERNEL_ARGV

# Rich display that works in ipykernel (IPython.display) and in ours (display builtins).
DISPLAY_PRELUDE = """\
try:
    from IPython import get_ipython
    _in_ipython = get_ipython() is not None
except ImportError:
    _in_ipython = False
if _in_ipython:
    from IPython.display import clear_output, display, update_display
else:
    def update_display(obj, *, display_id):
        display(obj, display_id=display_id, update=True)
class Md:
    def __init__(self, text):
        self.text = text
    def _repr_markdown_(self):
        return self.text
class Js:
    def __init__(self, data):
        self.data = data
    def _repr_json_(self):
        return self.data
"""

SIZE = (120, 36)
WAIT_TIMEOUT = 30.0
LISTEN_TIMEOUT = 30.0


class KernelProcess:
    """A kernel subprocess on one connection file; ``respawn`` restarts it when it exits."""

    def __init__(
        self, tmp_path: Path, *, respawn: bool = False, argv: list[str] | None = None
    ) -> None:
        self.tmp_path = tmp_path
        self.respawn = respawn
        self.argv = list(argv or UI_KERNEL_ARGV)
        kernel_name = "python3" if self.argv == IPYKERNEL_ARGV else "ipytui"
        self.info: ConnectionInfo = new_connection_info(kernel_name=kernel_name)
        self.path = write_connection_file(self.info, tmp_path / "kernel.json")
        self.env = {
            **os.environ,
            "IPYTHONDIR": str(tmp_path / "ipython"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "IPYTUI_DATA_DIR": str(tmp_path / "data"),
            "IPYTUI_CONFIG_DIR": str(tmp_path / "config"),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> KernelProcess:
        self._launch()
        if self.respawn:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()
        return self

    def _launch(self) -> None:
        log = open(self.tmp_path / f"kernel-{self.starts}.log", "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [*self.argv, str(self.path)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return  # exited; the watcher (if any) starts it again
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", self.info.shell_port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"kernel did not listen within {LISTEN_TIMEOUT}s")

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                self._launch()
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=10)

    def relaunch(self) -> None:
        """Start the kernel again on the same connection file (after ``kill``)."""
        self._launch()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def make_app(kernel: KernelProcess, **kwargs: Any):
    """An IpytuiApp on the test kernel, with fixed name and deterministic looks."""
    from ipytui.app.app import IpytuiApp
    from ipytui.app.config import Config

    config = kwargs.pop("config", None) or Config(display_name="alice", scrollback_lines=5000)
    kwargs.setdefault("deterministic", True)
    return IpytuiApp(kernel.path, config=config, **kwargs)


async def wait_for(pilot, predicate: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT):
    """Let the app run until ``predicate()`` is truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def wait_ready(pilot) -> None:
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.lifecycle == "ok", "the kernel to be ready")


async def type_text(pilot, text: str) -> None:
    """Type text into the focused editor (newlines as Ctrl+J, which never runs)."""
    keys = []
    for ch in text:
        keys.append({"\n": "ctrl+j", " ": "space"}.get(ch, ch))
    await pilot.press(*keys)


async def run_cell(pilot, code: str, *, expect_count: int | None = None) -> Any:
    """Type code, press F5 (run now), and wait until the cell has finished."""
    screen = pilot.app.main_screen
    before = set(screen.stream.cells)
    screen.editor.set_text(code)
    await pilot.press("f5")

    def finished():
        new = [c for cid, c in screen.stream.cells.items() if cid not in before]
        done = [c for c in new if c.own and c.status not in ("queued", "running")]
        return done[-1] if done else None

    cell = await wait_for(pilot, finished, f"cell {code!r} to finish")
    if expect_count is not None:
        assert cell.execution_count == expect_count
    return cell


def run_async(coro):
    """Run a coroutine from sync code (snapshot tests) on a private loop."""
    return asyncio.run(coro)
