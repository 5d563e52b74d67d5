"""A Debug Adapter Protocol connection to debugpy's adapter, over plain TCP.

DAP frames are ``Content-Length: N\\r\\n\\r\\n`` + N bytes of JSON. A reader
thread sorts what arrives: responses wake the request waiting for them (by
``request_seq``), events go to ``on_event``. The worker has no ZeroMQ, and
needs none for this.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ipytui.worker")

HEADER_END = b"\r\n\r\n"
TIMEOUT = 20.0  # seconds for the adapter to answer (attach starts pydevd's side)


class DapError(RuntimeError):
    """The adapter did not answer, or the connection is gone."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, default=repr).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class FrameReader:
    """Splits a byte stream into DAP messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages = []
        while True:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                return messages
            length = _content_length(self._buffer[:end])
            start = end + len(HEADER_END)
            if len(self._buffer) < start + length:
                return messages
            messages.append(json.loads(self._buffer[start:start + length]))
            self._buffer = self._buffer[start + length:]


def _content_length(header: bytes) -> int:
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise DapError(f"a DAP frame without Content-Length: {header!r}")


class DapConnection:
    """One client connection to the adapter; ``request`` is safe from any thread."""

    def __init__(self, host: str, port: int, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self._sock.settimeout(None)
        self._on_event = on_event
        self._lock = threading.Lock()
        self._waiting: dict[int, list[Any]] = {}  # request seq -> [event, response]
        self._events: dict[str, threading.Event] = {}
        self.closed = False
        self.reader = threading.Thread(target=self._read, name="ipytui-dap", daemon=True)
        self.reader.pydev_do_not_trace = True  # type: ignore[attr-defined]
        self.reader.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
        self.reader.start()

    def expect_event(self, name: str) -> threading.Event:
        """An Event set when the adapter sends event ``name`` (ask before sending)."""
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise DapError("the debug adapter connection is closed")
        with self._lock:
            self._sock.sendall(encode(message))

    def request(self, message: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send a request; its response (raises DapError if none comes)."""
        return self.request_later(message)(timeout)

    def request_later(self, message: dict[str, Any]) -> Callable[[float], dict[str, Any]]:
        """Send a request now; the returned function waits for its response."""
        slot: list[Any] = [threading.Event(), None]
        seq = int(message["seq"])
        with self._lock:
            self._waiting[seq] = slot
        try:
            self.send(message)
        except BaseException:
            with self._lock:
                self._waiting.pop(seq, None)
            raise

        def wait(timeout: float = TIMEOUT) -> dict[str, Any]:
            try:
                if not slot[0].wait(timeout):
                    raise DapError(f"no answer from the debug adapter to {message.get('command')!r}")
            finally:
                with self._lock:
                    self._waiting.pop(seq, None)
            if slot[1] is None:
                raise DapError("the debug adapter connection closed")
            return slot[1]

        return wait

    def _read(self) -> None:
        frames = FrameReader()
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            for message in frames.feed(data):
                self._dispatch(message)
        self.closed = True
        with self._lock:
            for slot in self._waiting.values():
                slot[0].set()  # their response is None: the connection closed

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "response":
            with self._lock:
                slot = self._waiting.get(int(message.get("request_seq", -1)))
            if slot is not None:
                slot[1] = message
                slot[0].set()
            return
        if message.get("type") == "event":
            with self._lock:
                waiter = self._events.get(message.get("event", ""))
            if waiter is not None:
                waiter.set()
            try:
                self._on_event(message)
            except Exception:  # noqa: BLE001 - the reader must keep reading
                log.exception("forwarding a debug event failed")

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
