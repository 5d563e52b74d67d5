"""stdout/stderr capture: batched ``stream`` messages and C-level fd capture.

Writes are appended to a buffer; a flusher thread sends it a few ms after
the first write. So a print loop becomes a handful of messages, not one per
line.

``write`` is the hot path of every print loop, so it takes no lock: the
buffer is a deque (its append and popleft are atomic), never replaced while
writers may hold it, and a flag says whether a flush is already scheduled.
A flush clears the flag *before* taking what is buffered, so a write either
lands in that flush or sees the flag clear and schedules the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import os
import select
import struct
import termios
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipytui.kernel.worker.publisher import Publisher

FLUSH_DELAY = 0.01  # seconds from the first buffered write to its send
MAX_CHUNK = 256 * 1024  # characters per stream message


class OutStream(io.TextIOBase):
    """A text stream whose writes become ``stream`` messages on IOPub."""

    def __init__(self, name: str, publisher: Publisher, flusher: Flusher) -> None:
        super().__init__()
        self.name = name
        self._publisher = publisher
        self._flusher = flusher
        self._fresh_buffer()
        self._send_lock = threading.Lock()  # held from taking the buffer until it is sent

    def _fresh_buffer(self) -> None:
        self._buf: deque[str] = deque()
        self._append = self._buf.append  # bound once: write() does no attribute chase
        self._scheduled = False  # a flush of this stream is pending in the flusher
        self._lock = threading.Lock()  # serializes taking the buffer (held across fork)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    def reset(self, flusher: Flusher) -> None:
        """After a fork: fresh lock and flusher, nothing buffered."""
        self._flusher = flusher
        self._fresh_buffer()
        self._send_lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1 if self.name == "stdout" else 2

    def write(self, text: str) -> int:  # type: ignore[override]
        if text.__class__ is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._append(text)
        if not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)
        return len(text)

    def flush(self) -> None:
        # The send lock makes a flush wait for one already under way in another
        # thread (the flusher), so after flush() returns everything is sent.
        with self._send_lock:
            with self._lock:
                self._scheduled = False  # first: a write from now on schedules anew
                buf = self._buf
                count = len(buf)
                if not count:
                    return
                pop = buf.popleft
                text = "".join([pop() for _ in range(count)])
            publisher = self._publisher
            for start in range(0, len(text), MAX_CHUNK):
                publisher.send("iopub", "stream",
                               {"name": self.name, "text": text[start : start + MAX_CHUNK]})


    def discard(self) -> None:
        """Drop what is buffered and not yet sent (an interrupted cell's tail)."""
        with self._send_lock, self._lock:
            self._scheduled = False
            self._buf.clear()


class Flusher(threading.Thread):
    """Sends each stream's buffer FLUSH_DELAY after its first write."""

    def __init__(self) -> None:
        super().__init__(name="ipytui-flusher", daemon=True)
        self._cond = threading.Condition()
        self._pending: list[OutStream] = []

    def schedule(self, stream: OutStream) -> None:
        with self._cond:
            if stream not in self._pending:
                self._pending.append(stream)
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
            time.sleep(FLUSH_DELAY)
            with self._cond:
                streams, self._pending = self._pending, []
            for stream in streams:
                with contextlib.suppress(Exception):  # the flusher must never die
                    stream.flush()


class FdCapture:
    """Redirects file descriptors 1 and 2 into pipes read back into OutStreams.

    C extensions and subprocesses that write to fd 1/2 are captured this way.
    ``sync()`` makes sure everything written so far has reached the streams.
    """

    def __init__(self, streams: dict[int, OutStream]) -> None:
        self._streams = streams
        self._readers: dict[int, int] = {}
        self._busy: dict[int, threading.Event] = {}
        self.original: dict[int, int] = {}
        self._libc = _load_libc()

    def start(self) -> None:
        for fd in self._streams:
            self.original[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._readers[fd] = read_end
        self.restart()

    def restart(self) -> None:
        """Start the pump threads (again, in a promoted snapshot), dropping stale bytes."""
        self._busy = {fd: threading.Event() for fd in self._readers}
        for fd, read_end in self._readers.items():
            os.set_blocking(read_end, False)
            with contextlib.suppress(OSError):
                while os.read(read_end, 65536):
                    pass
            os.set_blocking(read_end, True)
            threading.Thread(target=self._pump, args=(read_end, self._streams[fd], self._busy[fd]),
                             daemon=True, name=f"ipytui-fd{fd}").start()

    def _pump(self, read_end: int, stream: OutStream, busy: threading.Event) -> None:
        poller = select.poll()
        poller.register(read_end, select.POLLIN)
        while True:
            try:
                poller.poll()
                # Busy is set while the bytes are still in the pipe, so pending()
                # never sees "pipe empty and reader idle" while data is in flight.
                busy.set()
                data = os.read(read_end, 65536)
            except OSError:
                data = b""
            if not data:
                busy.clear()
                return
            stream.write(data.decode("utf-8", "replace"))
            busy.clear()

    def pending(self) -> bool:
        """True if bytes wait in a pipe or a reader is mid-write."""
        if any(busy.is_set() for busy in self._busy.values()):
            return True
        for read_end in self._readers.values():
            buf = fcntl.ioctl(read_end, termios.FIONREAD, b"\0\0\0\0")
            if struct.unpack("i", buf)[0]:
                return True
        return False

    def sync(self, timeout: float = 0.5) -> None:
        """Flush C stdio and wait (bounded) until the pipes are drained."""
        if self._libc is not None:
            self._libc.fflush(None)
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.0005)


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None
