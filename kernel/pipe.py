"""The supervisor<->worker pipes: framed messages over Unix stream sockets.

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
import errno
import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .pipeframe import Decoder, FrameError, encode

log = logging.getLogger("ipytui.supervisor")

_MAIN_THREAD = threading.main_thread().ident
READ_SIZE = 256 * 1024
READ_BUDGET = 4 * 1024 * 1024  # bytes read per wake, so one busy pipe cannot starve the rest
ROLES = ("up", "quick", "exec")


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
class PipeEnd:
    """The supervisor's end of one connection: non-blocking reads and queued writes."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.pid = 0  # from the hello
        self.role = ""
        self.closed = False
        self.broken = ""  # why the stream could not be read, if it could not
        self._decoder = Decoder()
        self._out = bytearray()

    def read(self) -> list[list[bytes]]:
        """Every whole message that has arrived (sets ``closed`` at end of stream)."""
        messages: list[list[bytes]] = []
        budget = READ_BUDGET
        while budget > 0 and not self.closed:
            try:
                data = self.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            budget -= len(data)
            try:
                messages.extend(self._decoder.feed(data))
            except FrameError as exc:
                self.broken = f"garbled stream ({exc})"
                log.error("pipe %s of worker %s: %s; closing it", self.role, self.pid, self.broken)
                self.closed = True
        return messages

    def send(self, frames: list[bytes]) -> bool:
        """Queue a message and write what the socket takes now; False if the peer is gone."""
        if self.closed:
            return False
        self._out += encode(frames)
        return self.flush()

    @property
    def wants_write(self) -> bool:
        """Bytes are waiting for the worker to read (poll this end for POLLOUT)."""
        return bool(self._out)

    def flush(self) -> bool:
        """Write as much of the queue as the socket takes; False if the peer is gone."""
        out = self._out
        while out:
            try:
                sent = self.sock.send(out)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise
                self.closed = True
                out.clear()
                return False
            del out[:sent]
        return True

    def close(self) -> None:
        self.closed = True
        self._out.clear()
        with contextlib.suppress(OSError):
            self.sock.close()


def listen(path: str) -> socket.socket:
    """The supervisor's listening socket for worker connections."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def accept(listener: socket.socket) -> list[PipeEnd]:
    """Every connection waiting on the listening socket."""
    ends = []
    while True:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return ends
        ends.append(PipeEnd(sock))


def parse_hello(frames: list[bytes]) -> dict[str, Any] | None:
    """The pid and role a connection's first message names, or None if it is not a hello."""
    if len(frames) != 2 or frames[0] != b"hello":
        return None
    try:
        hello = json.loads(frames[1])
    except ValueError:
        return None
    if not isinstance(hello, dict) or hello.get("role") not in ROLES:
        return None
    return hello
