"""Starting kernels, measuring their memory, and killing every process we started.

Every process the benchmark starts is registered here (with its descendants,
re-read before each kill, since ipytui forks snapshot children as it goes),
and ``kill_all`` runs at exit and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

KERNEL_COMMANDS = {
    "ipytui": [sys.executable, "-m", "ipytui.kernel", "-f"],
    "ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f"],
}

_started: list[psutil.Process] = []
_cleanups: list[Any] = []


class Workdir:
    """A private temp tree: runtime dir, ipytui data dir, IPython dir, logs."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ipytui-bench-"))
        for name in ("runtime", "data", "ipython", "logs", "config"):
            (self.root / name).mkdir(mode=0o700)
        self.env = dict(
            os.environ,
            JUPYTER_RUNTIME_DIR=str(self.root / "runtime"),
            IPYTUI_DATA_DIR=str(self.root / "data"),
            IPYTUI_CONFIG_DIR=str(self.root / "config"),
            IPYTHONDIR=str(self.root / "ipython"),
        )
        self.env.pop("IPYTUI_WORKER", None)
        # Both sides run from bytecode, as installed packages do. An inherited
        # PYTHONDONTWRITEBYTECODE would leave ipytui (an editable install without
        # __pycache__) compiling every module at each start while ipykernel's
        # site-packages come with .pyc files. The private prefix keeps the repo clean;
        # the untimed warm-up start fills it for both.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        self._n = 0

    def connection_file(self, kind: str) -> Path:
        from ipytui.kernel.protocol.connection import new_connection_info, write_connection_file

        self._n += 1
        return write_connection_file(new_connection_info(), self.root / "runtime" / f"{kind}-{self._n}.json")

    def log(self, name: str):
        return open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115


def read_info(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def register(pid: int) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    _started.append(proc)
    return proc


def on_cleanup(fn) -> None:
    _cleanups.append(fn)


def spawn(cmd: list[str], env: dict[str, str], log) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True)
    register(proc.pid)
    return proc


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS summed over a process and all its descendants (MiB)."""
    total = {"rss": 0.0, "pss": 0.0, "uss": 0.0, "processes": 0}
    try:
        procs = tree(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return total
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total["rss"] += info.rss / 2**20
        total["pss"] += getattr(info, "pss", info.uss) / 2**20
        total["uss"] += info.uss / 2**20
        total["processes"] += 1
    return total


def wait_quiet(pid: int, timeout: float = 3.0, window: float = 0.15) -> None:
    """Until the process tree uses (almost) no CPU for `window` seconds: a settled kernel."""
    deadline = time.perf_counter() + timeout
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while time.perf_counter() < deadline:
        before = _cpu(tree(root))
        time.sleep(window)
        if _cpu(tree(root)) - before < 0.01:
            return


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def kill_tree(pid: int, grace: float = 0.0) -> None:
    """SIGKILL a process and every descendant (after `grace` seconds for a clean exit)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = tree(root)
    if grace:
        with contextlib.suppress(psutil.TimeoutExpired):
            root.wait(grace)
        procs += [p for p in tree(root) if p not in procs]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=2)


def kill_all() -> None:
    """Run cleanups, then kill every registered process and its descendants."""
    while _cleanups:
        with contextlib.suppress(Exception):
            _cleanups.pop()()
    while _started:
        proc = _started.pop()
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running():
                kill_tree(proc.pid)


def install_handlers() -> None:
    atexit.register(kill_all)

    def on_signal(signum, frame):
        kill_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def by_path(marker: str) -> list[psutil.Process]:
    """Processes whose command line names `marker` (our private temp dir)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline):
            found.append(proc)
    return found


def kill_by_path(marker: str) -> None:
    """Kill processes whose command line names our private temp dir (kernels a UI detached)."""
    for proc in by_path(marker):
        with contextlib.suppress(psutil.NoSuchProcess):
            kill_tree(proc.pid)


def clear_stale_locks(wd: Workdir) -> None:
    """Remove ipytui lock files of kernels that are gone, so no UI start offers a recovery."""
    for lock in (wd.root / "data" / "locks").glob("*.lock"):
        try:
            pid = int(json.loads(lock.read_text()).get("pid", 0))
        except (OSError, ValueError):
            continue
        if not pid or not psutil.pid_exists(pid):
            lock.unlink(missing_ok=True)
