"""The worker's end of the supervisor<->worker pipes (framed Unix stream sockets).

The supervisor listens on a socket in its private 0700 directory; a worker
(or a promoted snapshot) connects three times and names each connection in
its first message: ``up`` carries everything the worker says, ``quick``
brings the requests its listener thread answers, ``exec`` brings the
executes its main thread runs. The worker side blocks (it is threads doing
nothing else); the supervisor side never does: it reads what is there and
queues what the worker has not taken yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable

from ipytui.kernel.protocol.pipeframe import READ_SIZE, ROLES, Decoder, FrameError, encode

log = logging.getLogger("ipytui.supervisor")

_MAIN_THREAD = threading.main_thread().ident


# -- the worker's side ------------------------------------------------------
class WorkerPipe:
    """One blocking connection of the worker: send and receive whole messages."""

    def __init__(self, path: str, role: str) -> None:
        self.role = role
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self._decoder = Decoder()
        self._ready: deque[list[bytes]] = deque()
        self.writing = False  # the main thread is inside a write
        self.after_write: Callable[[], None] | None = None
        self.send_multipart([b"hello", json.dumps({"pid": os.getpid(), "role": role}).encode()])

    def send_multipart(self, frames: list[bytes]) -> None:
        """Write one message (callers serialize writers, e.g. the Publisher's lock)."""
        self._write(encode(frames))

    def send_many(self, messages: list[list[bytes]]) -> None:
        """Write several messages at once (one system call, one wake-up of the reader)."""
        self._write(b"".join(encode(frames) for frames in messages))

    def _write(self, data: bytes) -> None:
        """sendall that a Python signal handler cannot cut in half.

        sendall runs signal handlers between partial writes; one that raised
        (SIGINT -> KeyboardInterrupt in a cell) would leave half a message in
        the stream. While the main thread writes, the worker's handler only
        notes the interrupt; ``after_write`` raises it once the message is whole.
        """
        on_main = threading.get_ident() == _MAIN_THREAD
        if on_main:
            self.writing = True
        try:
            self.sock.sendall(data)
        finally:
            if on_main:
                self.writing = False
        if on_main and self.after_write is not None:
            self.after_write()

    def recv_multipart(self) -> list[bytes] | None:
        """The next message, waiting for it; None once the supervisor is gone."""
        return self._next(0)

    def wait(self, timeout: float) -> bool:
        """True once a message (or the end of stream) can be read, False after ``timeout``."""
        if self._ready:
            return True
        import select

        try:
            readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            return True  # let the read report it
        return bool(readable)

    def recv_nowait(self) -> list[bytes] | None:
        """The next message if one has arrived, else None (never waits)."""
        return self._next(socket.MSG_DONTWAIT)

    def _next(self, flags: int) -> list[bytes] | None:
        """Read until a whole message is in, or None (end of stream, or nothing yet).

        A stream that cannot be decoded cannot be resynchronised either: the
        process ends, and the supervisor's crash path restores the last state.
        """
        while not self._ready:
            try:
                data = self.sock.recv(READ_SIZE, flags)
            except (BlockingIOError, InterruptedError):
                return None
            if not data:
                return None
            try:
                self._ready.extend(self._decoder.feed(data))
            except FrameError as exc:
                log.error("pipe %s from the supervisor is garbled (%s); the worker ends", self.role, exc)
                os._exit(70)
        return self._ready.popleft()

    def abandon(self) -> None:
        """In a promoted snapshot: drop the connection inherited from the dead worker."""
        with contextlib.suppress(OSError):
            self.sock.close()


def connect_worker(path: str) -> dict[str, WorkerPipe]:
    """Open the three connections of a worker, in the order the supervisor expects."""
    return {role: WorkerPipe(path, role) for role in ROLES}


# -- the supervisor's side --------------------------------------------------
