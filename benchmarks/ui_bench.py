"""UI measurements in a real terminal: tmux with a fixed size, polled with capture-pane.

ipytui's UI (``python -m ipytui.app.cli``) is compared with ``jupyter console``
(ipykernel's terminal UI), both run the same way through ``python -m``:

- startup: spawn to an interactive prompt with the kernel ready (ipytui: the
  status bar says ``idle``; jupyter console: ``In [1]:``), each starting its
  own fresh kernel;
- attach: ``--existing FILE`` to an already running kernel of its own kind;
- stream: the N-line print typed into the UI, until the last line is on screen
  and the kernel is idle again; meanwhile (ipytui only: jupyter console does not
  read keys while a cell runs) one key at a time is sent and the time until
  it shows in the input editor is measured;
- memory of the UI process after the stream.

Screen polling costs a tmux client per look (a few ms), so latencies here
have a resolution of about 5-10 ms.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
from procs import (
    KERNEL_COMMANDS,
    Workdir,
    by_path,
    clear_stale_locks,
    kill_by_path,
    kill_tree,
    read_info,
    register,
    spawn,
    wait_quiet,
)

WIDTH, HEIGHT = 120, 40
UI_COMMANDS = {
    "ipytui": [sys.executable, "-m", "ipytui.app.cli"],
    "ipykernel": [sys.executable, "-m", "jupyter_console", "--kernel", "python3"],
}
READY = {
    "ipytui": re.compile(r"● idle"),
    "ipykernel": re.compile(r"In \[\d+\]:"),
}
Add = Callable[[str, Any], None]


class Tmux:
    """One private tmux server with one fixed-size pane."""

    count = 0

    def __init__(self, wd: Workdir) -> None:
        Tmux.count += 1
        self.socket = f"{wd.root.name}-{Tmux.count}"
        self.wd = wd
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", str(WIDTH),
                   "-y", str(HEIGHT), "sleep 1000000")
        self._tmux("set-option", "-g", "default-terminal", "tmux-256color")
        self._tmux("set-option", "-g", "status", "off")
        self._tmux("set-option", "-g", "remain-on-exit", "on")  # a UI exiting keeps the server
        self._tmux("resize-window", "-t", "bench", "-x", str(WIDTH), "-y", str(HEIGHT))
        self.server_pid = int(self._tmux("display-message", "-p", "#{pid}").strip())
        register(self.server_pid)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.wd.env, check=True,
                              capture_output=True, text=True).stdout

    def respawn(self, cmd: list[str]) -> None:
        self._tmux("respawn-pane", "-k", "-t", "bench", "exec " + subprocess.list2cmdline(cmd))

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "bench")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", "bench", *(["-l"] if literal else []), *keys)

    def wait_screen(self, predicate: Callable[[str], bool], timeout: float,
                    what: str) -> tuple[float, str]:
        """Poll the screen until predicate(text); returns (when it was seen, the text)."""
        deadline = time.perf_counter() + timeout
        while True:
            text = self.screen()
            now = time.perf_counter()
            if predicate(text):
                return now, text
            if now > deadline:
                raise TimeoutError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.003)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            path = self._tmux("display-message", "-p", "#{socket_path}").strip()
            self._tmux("kill-server")
            with contextlib.suppress(OSError):
                os.unlink(path)


def _stop_ui(tmux: Tmux, wd: Workdir) -> None:
    """Kill the UI and its children; shut down any kernel a UI started, then kill leftovers."""
    with contextlib.suppress(Exception):
        kill_tree(tmux.pane_pid())
    with contextlib.suppress(Exception):
        tmux.respawn(["sleep", "1000000"])
    for path in (wd.root / "runtime").glob("kernel-*.json"):
        _shutdown(path)
    kill_by_path(str(wd.root / "runtime" / "kernel-"))
    clear_stale_locks(wd)


def _shutdown(path, grace: float = 3.0) -> None:
    """shutdown_request to the kernel of a connection file; wait (bounded) for it to exit."""
    from leanclient import LeanClient

    procs = by_path(str(path))
    if not procs:
        return
    client = LeanClient(read_info(path))
    try:
        client.send("control", "shutdown_request", {"restart": False})
        client.pump(50)
        psutil.wait_procs(procs, timeout=grace)
    except Exception:  # noqa: BLE001 - killed just after anyway
        pass
    finally:
        client.close()


def _last_line_shown(text: str, last: int) -> bool:
    return re.search(rf"(?m)^\W*{last}\W*$", text) is not None


def _streaming(text: str) -> bool:
    return re.search(r"(?m)^\W*\d{2,}\W*$", text) is not None


def ui_startup(tmux: Tmux, kind: str, add: Add) -> None:
    clear_stale_locks(tmux.wd)
    t0 = time.perf_counter()
    tmux.respawn(UI_COMMANDS[kind])
    t1, _ = tmux.wait_screen(lambda s: READY[kind].search(s) is not None, 60, f"the {kind} UI prompt")
    add("ui_startup", (t1 - t0) * 1e3)


def ui_stream(tmux: Tmux, kind: str, lines: int, add: Add, pending: dict[str, str]) -> None:
    """Type the print loop, run it, and (ipytui) measure keys shown while it streams."""
    code = f"for i in range({lines}): print(i)"
    tmux.keys(code, literal=True)
    tmux.wait_screen(lambda s: code in s, 10, "the code in the editor")
    t0 = time.perf_counter()
    tmux.keys("F5" if kind == "ipytui" else "Enter")
    if kind == "ipykernel":
        # IPython may hold a one-line compound statement for a blank line.
        time.sleep(0.05)
        if re.search(r"(?m)^\s*\.\.\.:", tmux.screen()):
            tmux.keys("Enter")
    last = lines - 1

    def finished(text: str) -> bool:
        if not _last_line_shown(text, last):
            return False
        after = text if kind == "ipytui" else text.split(code)[-1]  # not the "In [1]:" before it
        return READY[kind].search(after) is not None

    if kind == "ipytui" and not _key_latencies(tmux, add, lambda text: _last_line_shown(text, last)):
        pending["ui_key_latency"] = "the stream ended before a key could be timed (more --ui-lines)"
    t1, _ = tmux.wait_screen(finished, 600, "the end of the stream")
    add("ui_stream", (t1 - t0) * 1e3)


def _key_latencies(tmux: Tmux, add: Add, done: Callable[[str], bool], limit: int = 40) -> int:
    """One letter at a time into the editor while output streams; time until it shows."""
    try:
        tmux.wait_screen(_streaming, 30, "output to start streaming")
    except TimeoutError:
        return 0
    samples = 0
    typed = ""
    chars = iter(["qx", *string.ascii_lowercase * 2])  # "qx" makes the echo unique on screen
    for _ in range(limit):
        char = next(chars)
        typed += char
        t0 = time.perf_counter()
        tmux.keys(char, literal=True)
        try:
            t1, text = tmux.wait_screen(lambda s, want=typed[-12:]: want in s or done(s), 30, "a key echo")
        except TimeoutError:
            return samples
        if typed[-12:] not in text:
            return samples  # the stream ended first: this key was not shown mid-stream
        add("ui_key_latency", (t1 - t0) * 1e3)
        samples += 1
        if done(text):
            return samples
        time.sleep(0.02)
    return samples


def ui_memory(tmux: Tmux, add: Add) -> None:
    proc = psutil.Process(tmux.pane_pid())
    wait_quiet(proc.pid, timeout=2.0)
    info = proc.memory_full_info()
    add("ui_mem_after_pss", info.pss / 2**20)
    add("ui_mem_after_rss", info.rss / 2**20)


def ui_attach(tmux: Tmux, wd: Workdir, kind: str, add: Add) -> None:
    """The UI alone: attach to a kernel that is already up."""
    from leanclient import LeanClient

    path = wd.connection_file(kind)
    kernel = spawn([*KERNEL_COMMANDS[kind], str(path)], wd.env, wd.log(kind))
    client = LeanClient(read_info(path))
    try:
        client.wait_reply(client.send("shell", "kernel_info_request", {}), 60)
        client.wait_iopub(60)
        client.run("pass", 60)  # ipytui answers kernel_info before its worker is up
        wait_quiet(kernel.pid, timeout=5.0)  # the UI alone is timed, not a booting kernel
        cmd = [*UI_COMMANDS[kind][:3], "--existing", str(path)]
        t0 = time.perf_counter()
        tmux.respawn(cmd)
        t1, _ = tmux.wait_screen(lambda s: READY[kind].search(s) is not None, 60,
                                 f"the {kind} UI prompt")
        add("ui_attach", (t1 - t0) * 1e3)
    finally:
        _stop_ui(tmux, wd)
        client.close()
        _shutdown(path)
        kill_tree(kernel.pid)
        clear_stale_locks(wd)


def warm_up_ui(kind: str, wd: Workdir) -> None:
    """One untimed start of a UI up to its prompt: every module it imports gets its .pyc,
    not only those of the app's import, so a timed start compiles nothing."""
    if subprocess.run(["which", "tmux"], capture_output=True).returncode:
        return
    tmux = Tmux(wd)
    try:
        ui_startup(tmux, kind, lambda name, value: None)
    finally:
        _stop_ui(tmux, wd)
        tmux.close()


def run_ui_rep(kind: str, wd: Workdir, lines: int, add: Add, pending: dict[str, str]) -> None:
    if subprocess.run(["which", "tmux"], capture_output=True).returncode:
        for name in ("ui_startup", "ui_attach", "ui_stream", "ui_key_latency", "ui_mem_after_pss",
                     "ui_mem_after_rss"):
            pending[name] = "tmux is not installed"
        return
    tmux = Tmux(wd)
    try:
        try:
            ui_startup(tmux, kind, add)
            ui_stream(tmux, kind, lines, add, pending)
            ui_memory(tmux, add)
        finally:
            _stop_ui(tmux, wd)
        ui_attach(tmux, wd, kind, add)
    finally:
        tmux.close()
