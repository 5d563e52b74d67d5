"""Clean what kernels that went down uncleanly left behind (``ipytui list``/``recover``).

A supervisor killed with SIGKILL cannot remove its private pipe directory
(``$TMPDIR/ipytui-<pid>-*``), and a process killed mid-write leaves a
temporary file next to a lock or checkpoint, or a restore point's spill file. Only leftovers of processes
that are gone are removed; a running kernel's files are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ipytui.kernel.protocol.atomic import sweep_tmp
from ipytui.kernel.protocol.paths import PRIVATE_DIR, checkpoints_dir, locks_dir
from ipytui.kernel.protocol.procs import is_running
from ipytui.kernel.protocol.spill_files import sweep_spills


def sweep(temp_root: Path | None = None) -> list[Path]:
    """Remove leftovers of dead processes; returns what was removed."""
    removed = [
        *sweep_tmp(locks_dir()),
        *sweep_tmp(checkpoints_dir()),
        *sweep_spills(checkpoints_dir()),
    ]
    root = Path(temp_root or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = PRIVATE_DIR.match(entry.name)
            if match is None or is_running(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid():
                    shutil.rmtree(entry)
                    removed.append(entry)
    return removed
