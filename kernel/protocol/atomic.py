"""Atomic file writes that leave nothing behind when the disk fails.

Every file that outlives a process (lock, connection file, checkpoint) is
written to a temporary name in the same directory and renamed over the real
one. If anything fails (ENOSPC, EIO, an exception of the writer) the
temporary file is removed before the error goes up, so a full disk never
leaves a partial or 0-byte file, and the old file stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

# Errors that say "the disk is in trouble" rather than "this program is wrong".
DISK_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def write_atomic(path: Path, write: Callable[[IO[bytes]], None], *, mode: int = 0o600,
                 fsync: bool = False) -> Path:
    """Write ``path`` through ``write(file)``; all or nothing (see the module docstring)."""
    tmp = tmp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def tmp_path(path: Path, pid: int | None = None) -> Path:
    """The temporary name ``write_atomic`` uses for ``path`` in process ``pid``."""
    return path.with_name(f".{path.name}.{pid or os.getpid()}.tmp")


def remove_tmp(path: Path, pid: int) -> None:
    """Remove what a process killed mid-write left of ``path`` (it writes no more)."""
    with contextlib.suppress(OSError):
        tmp_path(path, pid).unlink()


def sweep_tmp(directory: Path, name: str = "*") -> list[Path]:
    """Remove temporary files (of the file ``name``, or all) of processes that are gone;
    returns what was removed."""
    removed = []
    for tmp in directory.glob(f".{name}.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or _running(int(pid)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk refused (full, I/O error, read-only), as opposed
    to a transient or logical failure (a locked database, a bad value)."""
    if getattr(exc, "errno", None) in DISK_ERRNOS:
        return True
    text = str(exc).lower()
    return any(words in text for words in ("disk is full", "disk i/o error", "readonly database"))


def disk_reason(exc: BaseException) -> str:
    """A short, lower-case reason for a user: 'no space left on the device'."""
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if "disk is full" in text or "disk i/o error" in text:  # sqlite3's words for ENOSPC, EIO
        return "no space left on the device" if "full" in text else "input/output error on the device"
    if code == errno.ENOSPC:
        return "no space left on the device"
    if code == errno.EDQUOT:
        return "the disk quota is exceeded"
    if code == errno.EIO:
        return "input/output error on the device"
    if code == errno.EROFS:
        return "the file system is read-only"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"
