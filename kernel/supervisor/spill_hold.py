"""The supervisor's hold on the spill file a lazily promoted worker maps.

A restore point that becomes the worker keeps its big buffers as private
mappings of its spill file and removes the file's name (worker/spill.py). When
the worker later dies, whoever holds the file's last reference frees it: its
page cache and disk blocks, a second and more for gigabytes. That must not be
the dying worker, whose death the supervisor hears of only once it is complete:
a crash restore would wait for the freeing. So the supervisor opens the file
before it promotes the point and closes it, on a thread of its own, once that
worker is gone.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def hold_spill(path: Path) -> int:
    """Open a point's spill file before it is promoted (it removes the name then),
    or -1 when it spilled nothing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


def close_later(fd: int) -> None:
    """Close ``fd`` on a thread of its own: if it is the file's last reference, the
    freeing happens there, not in the supervisor's loop."""
    if fd >= 0:
        threading.Thread(
            target=os.close, args=(fd,), name="ipytui-spill-close", daemon=True
        ).start()
