"""The supervisor's side of the worker pipes: who may connect, reading, queued writing.

One link serves the successive workers of a kernel. ``expect(pid)`` names
the process whose connections are taken from then on (a fresh worker or a
promoted snapshot) and closes the previous one's; a connection whose hello
names another pid is closed. Nothing here blocks: reads take what has
arrived, writes the worker has not read yet wait in their PipeEnd until the
poller says the socket is writable. See kernel/pipe.py and docs/internals.md.
"""

from __future__ import annotations

import contextlib
import logging
import select
from collections.abc import Callable

import zmq
from ipytui.kernel.protocol.pipeframe import ROLES
from ipytui.kernel.supervisor import pipe_end as pipe

log = logging.getLogger("ipytui.supervisor")


class WorkerLink:
    """The listening socket and the current worker's three connections."""

    def __init__(self, path: str, poller: zmq.Poller, on_up: Callable[[list[bytes]], None],
                 on_connected: Callable[[], None], on_broken: Callable[[str], None]) -> None:
        self.path = path
        self.poller = poller
        self._on_up = on_up  # each message the worker sends
        self._on_connected = on_connected  # all three pipes of the expected worker are in
        self._on_broken = on_broken  # its "up" pipe failed while it lives
        self.listener = pipe.listen(path)
        self.fd = self.listener.fileno()
        poller.register(self.fd, zmq.POLLIN)
        self.pid = 0  # the worker whose connections are taken
        self.pipes: dict[str, pipe.PipeEnd] = {}  # role -> our end
        self.unclaimed: list[pipe.PipeEnd] = []  # connections that have not said who they are

    @property
    def connected(self) -> bool:
        return len(self.pipes) == len(ROLES)

    def expect(self, pid: int) -> None:
        """From now on, take the connections of this process (0: of none)."""
        for end in list(self.pipes.values()):
            self._drop(end)
        self.pipes = {}
        self.pid = pid

    def send(self, role: str, frames: list[bytes]) -> bool:
        """Send to the worker's "exec" or "quick" pipe; False if it is not there."""
        end = self.pipes.get(role)
        if end is None or not end.send(frames):
            return False
        if end.wants_write:
            self.poller.register(end.fd, zmq.POLLIN | zmq.POLLOUT)
        return True

    def handle(self, events: dict[object, int]) -> None:
        """Everything one poll reported for the link (its entries are taken out)."""
        if events.pop(self.fd, 0):
            for end in pipe.accept(self.listener):
                self.unclaimed.append(end)
                self.poller.register(end.fd, zmq.POLLIN)
        up = self.pipes.get("up")
        if up is not None and up.fd in events:  # first: replies are on the critical path
            self._on_events(up, events.pop(up.fd))
        for end in [*self.pipes.values(), *self.unclaimed]:
            if end.fd in events and not end.closed:
                self._on_events(end, events.pop(end.fd))

    def read_up(self, timeout_ms: int = 0) -> None:
        """Take what the worker has said, waiting up to timeout_ms for something."""
        end = self.pipes.get("up")
        if end is None or end.closed:
            return
        if timeout_ms:
            poll = select.poll()
            poll.register(end.fd, select.POLLIN)
            if not poll.poll(timeout_ms):
                return
        self._on_events(end, zmq.POLLIN)

    def close(self) -> None:
        self.expect(0)
        for end in list(self.unclaimed):
            self._drop(end)
        with contextlib.suppress(KeyError):
            self.poller.unregister(self.fd)
        self.listener.close()

    # -- internals --------------------------------------------------------------
    def _on_events(self, end: pipe.PipeEnd, events: int) -> None:
        if events & zmq.POLLOUT and end.flush() and not end.wants_write:
            self.poller.register(end.fd, zmq.POLLIN)
        if not events & zmq.POLLIN:
            return
        for frames in end.read():
            if end.closed and not end.role:
                break  # refused at its hello: the rest of what it sent is not read
            if not end.role:
                self._claim(end, frames)
            elif end.role == "up" and end is self.pipes.get("up"):
                self._on_up(frames)
        if end.closed:
            if end.role == "up" and end is self.pipes.get("up") and self.pid:
                # A live worker that cannot be heard would leave its clients waiting
                # (at a worker's death, end of stream is normal: the callback checks).
                self._on_broken(end.broken or "closed")
            self._drop(end)

    def _claim(self, end: pipe.PipeEnd, frames: list[bytes]) -> None:
        """A connection's hello: it belongs to the expected worker, or it is closed."""
        hello = pipe.parse_hello(frames)
        self.unclaimed.remove(end)
        if hello is None or not self.pid or hello.get("pid") != self.pid or hello["role"] in self.pipes:
            log.warning("closed a pipe connection from %s", (hello or {}).get("pid", "an unknown process"))
            self._drop(end)
            return
        end.pid, end.role = self.pid, str(hello["role"])
        self.pipes[end.role] = end
        if self.connected:
            self._on_connected()

    def _drop(self, end: pipe.PipeEnd) -> None:
        with contextlib.suppress(KeyError):
            self.poller.unregister(end.fd)
        if end in self.unclaimed:
            self.unclaimed.remove(end)
        if self.pipes.get(end.role) is end:
            del self.pipes[end.role]
        end.close()
