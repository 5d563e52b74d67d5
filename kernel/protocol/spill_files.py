"""Where a restore point's spill file lives, and removing the ones of dead points.

A waiting snapshot writes its large buffers to ``<checkpoint>.spill.<pid>``
beside the kernel's checkpoint (worker/spill.py). The supervisor removes a
point's file when it drops the point, and sweeps the files of points that are
gone when it starts and stops (and ``ipytui list`` sweeps those of dead kernels).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def spill_path(checkpoint_path: Path, pid: int) -> Path:
    """The spill file of the restore point ``pid`` of the kernel of ``checkpoint_path``."""
    return checkpoint_path.with_name(f"{checkpoint_path.name}.spill.{pid}")


def spilled_bytes(checkpoint_path: Path, pid: int) -> int:
    """Disk bytes the point's spill file takes (0 if it has none)."""
    try:
        return os.stat(spill_path(checkpoint_path, pid)).st_blocks * 512
    except OSError:
        return 0


def remove_spill(checkpoint_path: Path, pid: int) -> None:
    """Remove the spill file of a point that is dropped (or was never written)."""
    with contextlib.suppress(OSError):
        spill_path(checkpoint_path, pid).unlink()


def remove_spills(checkpoint_path: Path) -> None:
    """Remove every spill file of this kernel (it is stopping: its points are killed)."""
    for path in checkpoint_path.parent.glob(f"{checkpoint_path.name}.spill.*"):
        with contextlib.suppress(OSError):
            path.unlink()


def sweep_spills(directory: Path, name: str = "*") -> list[Path]:
    """Remove the spill files (of the checkpoint ``name``, or all) whose point is no
    longer running; returns what was removed. A live point's file is never touched."""
    from ipytui.kernel.protocol.procs import is_running

    removed = []
    for path in directory.glob(f"{name}.spill.*"):
        pid = path.name.rsplit(".", 1)[-1]
        if not pid.isdigit() or is_running(int(pid)):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
