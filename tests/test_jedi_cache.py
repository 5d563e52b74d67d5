"""ipytui's jedi cache: private, written atomically, healed when torn (one process each)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ipytui.kernel.worker.jedi_cache import write_atomically

COMPLETE = (
    "from ipytui.kernel.worker import jedi_cache\n"
    "jedi_cache.configure()\n"
    "import jedi\n"
    "names = [c.name for c in jedi.Interpreter('import textwrap\\ntextwrap.ded', [{}]).complete()]\n"
    "print(names)\n"
)


def run_python(code: str, cache: Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cache_is_private_and_every_file_loads(tmp_path: Path) -> None:
    assert "dedent" in run_python(COMPLETE, tmp_path)
    files = list(tmp_path.rglob("*.pkl"))
    assert files and all(p.is_relative_to(tmp_path / "ipytui") for p in files)
    for path in files:
        with path.open("rb") as f:
            pickle.load(f)


def test_torn_files_are_replaced(tmp_path: Path) -> None:
    run_python(COMPLETE, tmp_path)
    files = list(tmp_path.rglob("*.pkl"))
    for path in files:
        path.write_bytes(path.read_bytes()[:10])
    assert "dedent" in run_python(COMPLETE, tmp_path)
    for path in tmp_path.rglob("*.pkl"):
        with path.open("rb") as f:
            pickle.load(f)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "module.pkl"
    write_atomically(str(target), {"old": 1})
    with pytest.raises(TypeError):
        write_atomically(str(target), {"lock": threading.Lock()})  # cannot be pickled
    assert pickle.loads(target.read_bytes()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["module.pkl"]
