"""What unclean exits leave is cleaned, and private dirs are private.

- A supervisor killed with SIGKILL leaves its pipe directory (``ipytui-<pid>-*``
  in $TMPDIR); ``ipytui list`` (and ``recover``) remove it, and a temporary file
  of a dead writer next to the locks, but never a live process's.
- An existing data dir with loose modes is tightened to 0700 when used.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import IPYTUI_ARGV, wait_until

pytestmark = pytest.mark.timeout(120)

T = 60.0


def private_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("ipytui-*") if p.is_dir())


def test_list_removes_what_a_killed_kernel_left(start_kernel, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the kernel's private dir goes here
    _, proc = start_kernel(IPYTUI_ARGV)
    locks = tmp_path / "data" / "locks"
    wait_until(lambda: private_dirs(temp) and list(locks.glob("*.lock")), T,
               "the kernel's private dir and lock")
    [left] = private_dirs(temp)
    assert left.name.startswith(f"ipytui-{proc.pid}-")
    family = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=T)
    for child in family:
        child.kill()
    psutil.wait_procs(family, timeout=T)
    dead_tmp = locks / f".0.lock.{proc.pid}.tmp"  # as write_atomic names them
    live_tmp = locks / f".1.lock.{os.getpid()}.tmp"
    dead_tmp.write_text("{")
    live_tmp.write_text("{")
    env = {**os.environ, "IPYTUI_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    listing = subprocess.run([sys.executable, "-m", "ipytui.app.cli", "list"], env=env, text=True,
                             capture_output=True, timeout=T)
    assert listing.returncode == 0, listing.stderr
    assert "stale" in listing.stdout
    assert not left.exists()
    assert not dead_tmp.exists()
    assert live_tmp.exists()  # its writer is alive (this test)


def test_an_existing_data_dir_is_tightened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipytui.kernel.protocol import paths

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    monkeypatch.setenv("IPYTUI_DATA_DIR", str(data))
    assert paths.locks_dir().is_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.locks_dir().stat().st_mode) == 0o700
