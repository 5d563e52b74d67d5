"""The supervisor's end of the supervisor<->worker pipes: it never blocks.

The supervisor listens on a socket in its private 0700 directory; a worker
(or a promoted snapshot) connects three times and names each connection in
its first message (see ``ipytui.kernel.worker.pipe``). This side reads what
is there and queues what the worker has not taken yet.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import socket
from typing import Any

from ipytui.kernel.protocol.pipeframe import READ_SIZE, ROLES, Decoder, FrameError, encode

log = logging.getLogger(__name__)

READ_BUDGET = 4 * 1024 * 1024  # bytes read per wake, so one busy pipe cannot starve the rest


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
