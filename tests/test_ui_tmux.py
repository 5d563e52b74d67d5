"""End to end: the installed ``ipytui`` in a real terminal (tmux), read off the screen."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import psutil
import pytest
from ipytui.kernel.client.kernel_client import KernelClient
from test_ui_support import IPYTUI_KERNEL_ARGV, KernelProcess

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

SCREEN_TIMEOUT = 40.0


class Terminal:
    """One tmux server of our own, one 120x36 window running a command."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"ipytui-test-{uuid.uuid4().hex[:8]}"
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"env {assignments} {shlex.join(command)}"
        self._tmux("new-session", "-d", "-s", "ui", "-x", "120", "-y", "36", line)
        self._tmux("set-option", "-t", "ui", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "ui")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "ui", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "ui", "-l", text)

    def wait_for(self, text: str, what: str) -> str:
        return self.wait_for_any((text,), what)

    def wait_for_any(self, texts: tuple[str, ...], what: str) -> str:
        return self._await(lambda screen: any(text in screen for text in texts), what)

    def wait_for_all(self, texts: tuple[str, ...], what: str) -> str:
        """The raw screen once every text shows in the main column, wherever it wraps:
        a long entry may be drawn a frame before the pane scrolls to its end."""
        return self._await(lambda screen: all(text in _flat(screen) for text in texts), what)

    def _await(self, shown: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while time.monotonic() < deadline:
            screen = self.screen()
            if shown(screen):
                return screen
            time.sleep(0.1)  # polling a terminal: there is no event to await
        raise AssertionError(f"no {what!r} on screen after {SCREEN_TIMEOUT}s:\n{self.screen()}")

    def close(self) -> None:
        self._tmux("kill-server")


def ipytui_command() -> list[str]:
    """The ``ipytui`` installed next to this Python (the venv's), else the one on PATH."""
    exe = shutil.which("ipytui", path=os.path.dirname(sys.executable)) or shutil.which("ipytui")
    return [exe] if exe else [sys.executable, "-m", "ipytui.app.cli"]


def terminal_env(tmp_path) -> dict[str, str]:
    return {
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTUI_DATA_DIR": str(tmp_path / "data"),
        "IPYTUI_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }


def _kill_kernels_under(path) -> None:
    """Kill any process whose command line names a file under ``path``."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(path) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def test_attach_run_and_quit_leaves_the_kernel(tmp_path):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('display_name = "tmuxer"\n')
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    term = Terminal([*ipytui_command(), "--existing", str(kernel.path)], terminal_env(tmp_path))
    try:
        term.wait_for("idle", "the idle kernel")
        term.type("6 * 7")
        term.keys("Enter")
        screen = term.wait_for("Out[1]: 42", "the result")
        assert "tmuxer@" in screen and "(you)" in screen
        term.type("for i in range(2):")
        term.keys("Enter")
        term.type("print('line', i)")
        term.keys("Enter", "Enter")
        screen = term.wait_for("line 1", "the loop's output")
        assert "line 0" in screen
        term.keys("C-q")
        screen = term.wait_for("ipytui --existing", "how to come back")
        assert str(kernel.path) in screen.replace("\n", "")
        assert kernel.proc.poll() is None
    finally:
        term.close()
        kernel.stop()


def test_new_kernel_and_shutdown_on_exit(tmp_path):
    term = Terminal([*ipytui_command(), "--shutdown-on-exit"], terminal_env(tmp_path))
    try:
        term.wait_for("idle", "a new kernel, idle")
        term.type("print('hello from tmux')")
        term.keys("Enter")
        term.wait_for("hello from tmux", "the output")
        runtime = tmp_path / "runtime"
        files = list(runtime.glob("kernel-*.json"))
        assert files, "ipytui wrote no connection file"
        term.keys("C-q")
        # The UI exits once the kernel has answered the shutdown (the goodbye line
        # itself is checked in the attach test); what matters here is the kernel.
        term.wait_for_any(("kernel shut down", "Pane is dead"), "the UI's exit")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _kernels_alive(tmp_path):
            time.sleep(0.1)
        assert not _kernels_alive(tmp_path)
    finally:
        term.close()
        _kill_kernels_under(tmp_path)


def _kernels_alive(tmp_path) -> bool:
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "ipytui.kernel" in cmdline and any(str(tmp_path) in part for part in cmdline):
            return proc.status() != psutil.STATUS_ZOMBIE
    return False


async def test_the_kernel_from_the_tmux_session_is_usable_by_others(tmp_path):
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    term = Terminal([*ipytui_command(), "--existing", str(kernel.path)], terminal_env(tmp_path))
    try:
        term.wait_for("idle", "the idle kernel")
        async with KernelClient(kernel.info, username="observer") as client:
            await client.wait_ready(20)
            await client.execute("print('seen in the terminal')", timeout=20)
        screen = term.wait_for("seen in the terminal", "the other client's output")
        assert "observer" in screen
    finally:
        term.close()
        kernel.stop()


def _own_label(screen: str) -> str:
    """The label a UI shows for itself in its peers panel (the row marked "(you)")."""
    for line in screen.splitlines():
        if "(you)" in line and "●" in line:
            return line.split("●", 1)[1].split("(you)", 1)[0].strip()
    raise AssertionError(f"no own row in the peers panel:\n{screen}")


def test_two_terminals_share_drafts_and_cells(tmp_path):
    """Two installed ipytui on one kernel: drafts and cells cross, with distinct labels."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('display_name = "tmuxer"\n')  # one user, two terminals
    first = Terminal(ipytui_command(), terminal_env(tmp_path))
    second = None
    try:
        first.wait_for("Peers (1)", "the first UI on its new kernel")
        second = Terminal([*ipytui_command(), "--existing"], terminal_env(tmp_path))
        second.wait_for("Peers (2)", "both peers in the second UI")
        first_label = _own_label(first.wait_for("Peers (2)", "both peers in the first UI"))
        second_label = _own_label(second.screen())
        assert first_label.startswith("tmuxer@") and second_label.startswith("tmuxer@")
        assert first_label != second_label

        first.type("zq = 7 + 123")
        # No key is pressed in the second terminal: the draft must come to it.
        screen = second.wait_for("zq = 7 + 123", "the first UI's draft in the second")
        assert "▸ zq = 7 + 123" in screen and "typing" in screen  # in its row, cursor line marked
        first.keys("Enter")
        first.type("print('from the first', zq)")
        first.keys("Enter")
        screen = second.wait_for("from the first 130", "the first UI's cell in the second")
        assert f"· {first_label}" in screen  # attributed to the first UI, by its label
    finally:
        first.close()
        if second is not None:
            second.close()
        _kill_kernels_under(tmp_path)


def _named_env(tmp_path, name: str) -> dict[str, str]:
    """A terminal's environment with its own config dir, so its UI has its own name."""
    config = tmp_path / f"config-{name}"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(f'display_name = "{name}"\n')
    return {**terminal_env(tmp_path), "IPYTUI_CONFIG_DIR": str(config)}


def _flat(screen: str) -> str:
    """The main column's text as one line: the peers panel (right of its border) cut
    off and wrapped lines joined, so a sentence can be found wherever it wraps."""
    return " ".join(" ".join(line.split("▏")[0].strip(" ┃").split()) for line in screen.splitlines())


def _line_with(screen: str, text: str) -> str:
    return next((line for line in screen.splitlines() if text in line), "")


async def _worker_pid(client: KernelClient) -> int:
    return (await client.kernel_info(timeout=20))["ipytui"]["worker_pid"]


async def test_every_ui_sees_the_same_crash_restore_and_restart(tmp_path):
    """Two UIs see a crash; a third attaching late sees the same crashed cell and
    report; F9 and F8 in one update the others' status and say who did it."""
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    alice = Terminal([*ipytui_command(), "--existing", str(kernel.path)], _named_env(tmp_path, "alice"))
    bob = Terminal([*ipytui_command(), "--existing", str(kernel.path)], _named_env(tmp_path, "bob"))
    late = None
    try:
        for term in (alice, bob):
            term.wait_for("idle", "the idle kernel")
        alice.type("kept = 41")
        alice.keys("Enter")
        bob.wait_for("kept = 41", "alice's first cell")
        alice.type("import ctypes; ctypes.string_at(0)")
        alice.keys("Enter")
        report = "KernelDied: segmentation fault (SIGSEGV), in a cell run by alice."
        banner = "in In [2] run by alice: import ctypes; ctypes.string_at(0) restored 1 name "
        for term in (alice, bob):
            screen = term.wait_for_all(("Restored: kept", report, banner), "the report in the cell")
            assert "☠" in _line_with(screen, "In [2] ·"), screen
        late = Terminal([*ipytui_command(), "--existing", str(kernel.path)], _named_env(tmp_path, "carol"))
        restored = "Restored the state after cell [1] from a snapshot"
        screen = late.wait_for_all(("Restored: kept", report, restored), "the replayed report")
        header = _line_with(screen, "In [2] ·")
        assert "alice" in header and "☠" in header and "✓" not in header, screen
        assert "last crash: SIGSEGV" in _line_with(screen, "idle"), screen
        watchers = (alice, late)
        for term in watchers:
            term.wait_for("restarts 1", "the crash counted by the kernel")

        bob.keys("F9")
        for term in watchers:
            term.wait_for_all(("Kernel restored by bob", "back at the state after In [1] from a snapshot"),
                              "bob's restore, named")
        async with KernelClient(kernel.info, username="observer") as client:
            await client.wait_ready(20)
            restored_pid = await _worker_pid(client)
        for term in watchers:
            status = _line_with(term.wait_for(f"pid {restored_pid}", "the new worker's pid"), "idle")
            assert "restarts 2" in status, status

        bob.keys("F8")
        bob.wait_for("Restart the kernel with an empty namespace?", "the question")
        bob.type("y")
        for term in watchers:
            term.wait_for("Kernel restarted by bob", "bob's restart, named")
        async with KernelClient(kernel.info, username="observer") as client:
            await client.wait_ready(20)
            fresh_pid = await _worker_pid(client)
        assert fresh_pid != restored_pid
        for term in watchers:
            status = _line_with(term.wait_for(f"pid {fresh_pid}", "the fresh worker's pid"), "idle")
            assert "restarts 3" in status, status
        late.close()
        # Attaching now, a UI gets the same story from the journal, in order.
        late = Terminal([*ipytui_command(), "--existing", str(kernel.path)], _named_env(tmp_path, "dave"))
        raw = late.wait_for("Kernel restarted by bob", "the replayed restart")
        screen = _flat(raw)
        order = [screen.find(text) for text in
                 ("KernelDied: segmentation fault", "Kernel restored by bob",
                  "Kernel restarted by bob")]
        assert -1 not in order and order == sorted(order), raw
        assert "☠" in _line_with(raw, "In [2] ·"), raw
        assert "restarts 3" in _line_with(late.wait_for(f"pid {fresh_pid}", "the status"), "idle")
    finally:
        for term in (alice, bob, late):
            if term is not None:
                term.close()
        kernel.stop()
