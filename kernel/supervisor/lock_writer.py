"""Lock-file rewrites off the supervisor's loop: one thread, the newest contents win.

Rewriting the lock is a temporary file renamed over the old one, and the
rename frees the old file's block. On a file system mounted with ``discard``
and without a journal (this VM's root), that free issues a discard and waits
for it, behind whatever the disk is busy with: a restore point writing a
256 MiB checkpoint kept a rename 40-90 ms long, and the loop it ran on held
the busy, reply and idle of the cell that flipped the lock to busy
(benchmarks/README.md, "Paced like a person"). So the loop only hands over
the bytes; this thread writes them, in order, and a newer version replaces
one not yet written (only the last state matters to a reader).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ipytui.kernel.protocol.atomic import write_atomic

log = logging.getLogger("ipytui.supervisor")


class LockWriter:
    """Writes versions of one file on a thread of its own, the newest only.

    ``path()`` is asked on that thread (it may create the directory);
    ``on_done(error)`` runs there after each write (``None``: written), so it
    must be thread-safe (the supervisor's DiskHealth is).
    """

    def __init__(self, path: Callable[[], Path], on_done: Callable[[OSError | None], None]) -> None:
        self.path, self.on_done = path, on_done
        self._cond = threading.Condition()
        self._pending: bytes | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, data: bytes) -> None:
        """Queue ``data`` (replacing a version not yet written); never waits."""
        with self._cond:
            if self._closed:
                return
            self._pending = data
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ipytui-lock", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is pending, then stop; True if the thread is done within ``timeout``.

        Called before the lock is removed or rewritten at the end, so no late write
        brings back a file the supervisor just removed.
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                data, self._pending = self._pending, None
            self._write(data)

    def _write(self, data: bytes) -> None:
        """One version, all or nothing (protocol/atomic.py); nothing here ends the thread."""
        error: OSError | None = None
        try:
            write_atomic(self.path(), lambda f: f.write(data))
        except OSError as exc:
            error = exc
        except Exception:  # noqa: BLE001 - a bug must not stop later versions
            log.exception("lock file write failed")
            return
        try:
            self.on_done(error)
        except Exception:  # noqa: BLE001
            log.exception("lock file write: reporting the outcome failed")
