"""CurveZMQ for the kernel's public sockets, and the client side of it.

Server: :class:`ServerSecurity` sets Curve server keys, a ZAP domain, a
maximum message size and bounded receive queues on each public socket, and
runs a small ZAP handler thread that decides who may connect. The ZAP
reply's User-Id is the client's public key; it arrives on every frame the
client sends, and each message is named from the allow-list as it is then,
so a grant or a revocation applies to connections already open: in
``--remote`` mode a revoked key's requests are answered with an error.

- ``--encrypt`` (and Jupyter's ``transport_encryption``): any client that
  knows the server's public key may connect, as in Jupyter; keys on the
  allow-list are named, others are anonymous.
- ``--remote``: only the server's own key (the holder of the private
  connection file) and keys on the allow-list get in.

The heartbeat accepts any Curve client in both modes: it only echoes, and
jupyter_client pings it with a throwaway key.

Client: :func:`client_info` reads a private or shared connection file and
fills in the Curve keys ``KernelClient`` connects with.
"""

from __future__ import annotations

import getpass
import logging
import os
import queue
import stat
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from ipytui.kernel.protocol import keyfiles as keys
from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionError_,
    ConnectionInfo,
)
from ipytui.kernel.protocol.wire import DEFAULT_MAX_MESSAGE_BYTES, frame_limit
from zmq.utils import z85

log = logging.getLogger("ipytui.security")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"ipytui"
HB_DOMAIN = b"ipytui-hb"
MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES  # the codec's limit on a whole message
HB_MAX_MESSAGE_BYTES = 64 * 1024
RECEIVE_HWM = 1000  # messages queued per client before zmq stops reading its connection
HANDSHAKE_MS = 10_000  # a connection that has not finished its handshake by then is dropped
PEERS_REMEMBERED = 4096
WATCHED_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_DISCONNECTED)

Decision = tuple[bool, str]  # (allowed, ZAP user id: the client's public key)


class AllowList:
    """The ``authorized_keys`` file, re-read when it changes, so grants apply at once.

    A file others can write to is ignored (every key refused), like sshd does.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()  # the ZAP thread and the supervisor's loop both ask

    def name_for(self, key: str) -> str | None:
        with self._lock:
            self._reload()
            return self._keys.get(key)

    def __len__(self) -> int:
        with self._lock:
            self._reload()
            return len(self._keys)

    def _reload(self) -> None:
        """Re-read the file if it changed. Anything unreadable lets nobody in (fails closed)."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                log.error("ignoring allow-list %s: other users can write to it (chmod 600 it)", self.path)
                self._stamp, self._keys = stamp, {}
                return
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return
        except OSError as exc:  # a directory, no permission
            _limited("allow-list", logging.ERROR, "cannot read allow-list %s: %s", self.path, exc)
            self._stamp, self._keys = None, {}
            return
        parsed, problems = keys.parse_authorized_keys(text)
        self._stamp, self._keys = stamp, parsed
        for problem in problems:
            log.warning("allow-list %s: skipped %s", self.path, problem)


class ServerSecurity:
    """How the public sockets are secured; ``secure()`` each one before it binds."""

    def __init__(self, server_secretkey: str | None = None, *, allow_list: AllowList | None = None,
                 require_allowed: bool = False, owner_name: str = "",
                 ports: dict[int, str] | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if require_allowed and not server_secretkey:
            raise ValueError("an allow-list needs Curve: no server secret key given")
        self.secretkey = server_secretkey
        self.publickey = zmq.curve_public(server_secretkey.encode()).decode() if server_secretkey else None
        self.allow_list = allow_list
        self.require_allowed = require_allowed
        self.owner_name = owner_name or getpass.getuser()
        self.max_message_bytes = max_message_bytes
        self.peers: OrderedDict[bytes, str] = OrderedDict()
        self.last_fd = -1  # source fd of the last message recv() returned
        self.last_revoked = False  # that message's key has been taken off the allow-list
        self._ports = ports or {}
        self._guard: _Guard | None = None

    @classmethod
    def for_kernel(cls, info: ConnectionInfo, *, remote: bool = False,
                   authorized_keys: Path | None = None,
                   max_message_bytes: int = MAX_MESSAGE_BYTES) -> ServerSecurity:
        """Curve if the connection file holds a server secret key; the allow-list if remote."""
        if remote and not info.curve_secretkey:
            raise ConnectionError_("--remote needs Curve keys in the connection file")
        ports = {info.port(ch): ch for ch in CHANNELS} if info.transport == "tcp" else {}
        allow = None
        if info.curve_secretkey:
            allow = AllowList(authorized_keys or keys.authorized_keys_path())
        return cls(info.curve_secretkey, allow_list=allow, require_allowed=remote, ports=ports,
                   max_message_bytes=max_message_bytes)

    @property
    def curve(self) -> bool:
        return self.secretkey is not None

    # -- setting up ---------------------------------------------------------
    def start(self, context: zmq.Context) -> None:
        """Start the ZAP handler in ``context`` (before any public socket binds)."""
        if not self.curve or self._guard is not None:
            return
        self._guard = _Guard(context, self.authenticate, self._ports)
        self._guard.start()
        if not self._guard.ready.wait(5) or not self._guard.bound:
            raise RuntimeError("could not start the ZAP handler")

    def secure(self, sock: zmq.Socket, *, heartbeat: bool = False) -> None:
        """Limits, and Curve server options when encrypting, for one public socket."""
        sock.maxmsgsize = HB_MAX_MESSAGE_BYTES if heartbeat else frame_limit(self.max_message_bytes)
        sock.rcvhwm = RECEIVE_HWM
        sock.handshake_ivl = HANDSHAKE_MS
        if not self.curve:
            return
        assert self.secretkey is not None and self.publickey is not None
        sock.curve_server = True
        sock.curve_secretkey = self.secretkey.encode()
        sock.curve_publickey = self.publickey.encode()
        sock.zap_domain = HB_DOMAIN if heartbeat else ZAP_DOMAIN
        if self._guard is not None:
            self._guard.watch(sock)

    def stop(self) -> None:
        if self._guard is not None:
            self._guard.stop()
            self._guard = None

    # -- deciding -----------------------------------------------------------
    def authenticate(self, domain: bytes, address: str, mechanism: bytes,
                     credentials: list[bytes]) -> Decision:
        """The ZAP decision for one connection: (allowed, name)."""
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return False, ""
        key = z85.encode(credentials[0]).decode("ascii")
        if domain == HB_DOMAIN:
            return True, ""
        if self.name_of(key) is not None:
            return True, key
        _limited("zap", logging.WARNING, "refused a client from %s: key %s is not on the allow-list",
                 address, key)
        return False, ""

    def name_of(self, key: str) -> str | None:
        """The name a client key goes by now: "" if anonymous, None if it may not connect."""
        if key == self.publickey:
            return self.owner_name
        name = self.allow_list.name_for(key) if self.allow_list is not None else None
        if name:
            return name
        return None if self.require_allowed else ""

    # -- receiving ----------------------------------------------------------
    def recv(self, sock: zmq.Socket) -> list[bytes]:
        """``recv_multipart`` for a public ROUTER that remembers who sent it.

        The name comes from the connection's ZAP User-Id (its key), so a header
        cannot fake it. ``last_revoked`` says whether that key may no longer send.
        """
        parts = sock.recv_multipart(copy=False)
        self.last_fd = _source_fd(parts[0])
        self.last_revoked = False
        if self.curve and len(parts) > 1:
            key = frame_user(parts[0])
            name = self.name_of(key) if key else ""
            routing_id = parts[0].bytes
            if name is None:
                self.last_revoked = True
                self.peers.pop(routing_id, None)
                _limited("revoked", logging.WARNING,
                         "refused a message from key %s: it is no longer on the allow-list", key)
            elif name:
                self.peers[routing_id] = name
                self.peers.move_to_end(routing_id)
                if len(self.peers) > PEERS_REMEMBERED:
                    self.peers.popitem(last=False)
            else:  # anonymous now (taken off the list with --encrypt): no old name sticks
                self.peers.pop(routing_id, None)
        return [p.bytes for p in parts]

    def log_event(self, event: dict[str, Any]) -> None:
        """Log a monitor event of a socket whose monitor someone else owns (presence's shell)."""
        log_monitor_event(event, self._ports)

    def peer_name(self, identities: list[bytes]) -> str | None:
        """The authenticated name behind a message's routing ids, if any."""
        return self.peers.get(identities[0]) if identities else None


def _source_fd(frame: zmq.Frame) -> int:
    """The connection's file descriptor (ties a message to monitor events), or -1."""
    try:
        return int(frame.get(zmq.SRCFD))
    except (zmq.ZMQError, AttributeError, TypeError, ValueError):
        return -1


def frame_user(frame: zmq.Frame) -> str | None:
    """The ZAP User-Id a frame arrived with (the client's key), or None (no ZAP)."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return str(user) or None


class _Guard(threading.Thread):
    """The ZAP handler, and a log of refused handshakes from the sockets' monitors."""

    def __init__(self, context: zmq.Context, decide: Callable[[bytes, str, bytes, list[bytes]], Decision],
                 ports: dict[int, str]) -> None:
        super().__init__(name="ipytui-zap", daemon=True)
        self.context = context
        self.decide = decide
        self.ports = ports
        self.ready = threading.Event()
        self.bound = False
        self._stopping = threading.Event()
        self._new: queue.SimpleQueue[zmq.Socket] = queue.SimpleQueue()

    def watch(self, sock: zmq.Socket) -> None:
        """Log ``sock``'s refused handshakes. The reading end is connected here, at
        once: libzmq's I/O thread blocks on an event for a monitor nobody reads
        yet, holding the lock the next ``monitor()`` call (the presence watch)
        waits for, so one early probe could hang the kernel for good."""
        addr = f"inproc://ipytui-monitor-{os.getpid()}-{id(sock):x}"
        sock.monitor(addr, WATCHED_EVENTS)
        pair = zmq.Socket(self.context, zmq.PAIR)  # handed over to this thread by the queue
        pair.linger = 0
        pair.connect(addr)
        self._new.put(pair)

    def stop(self) -> None:
        self._stopping.set()
        self.join(2)

    def run(self) -> None:
        # Sockets made with zmq.Socket() directly are not tracked by the context,
        # so Context.destroy() cannot close them under this thread; it ends us with ETERM.
        zap = zmq.Socket(self.context, zmq.REP)
        zap.linger = 0
        monitors: dict[zmq.Socket, str] = {}
        try:
            zap.bind(ZAP_ENDPOINT)
            self.bound = True
        except zmq.ZMQError as exc:
            log.error("cannot bind the ZAP handler: %s", exc)
        self.ready.set()
        poller = zmq.Poller()
        poller.register(zap, zmq.POLLIN)
        try:
            while self.bound and not self._stopping.is_set():
                self._add_monitors(poller, monitors)
                for sock, _ in poller.poll(200):
                    if sock is zap:
                        self._answer(zap)
                    else:
                        self._on_event(sock.recv_multipart())
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.exception("ZAP handler stopped")
        finally:
            while not self._new.empty():  # watched after this loop ended
                monitors[self._new.get()] = ""
            for sock in (zap, *monitors):
                sock.close(linger=0)

    def _add_monitors(self, poller: zmq.Poller, monitors: dict[zmq.Socket, str]) -> None:
        while not self._new.empty():
            pair = self._new.get()
            poller.register(pair, zmq.POLLIN)
            monitors[pair] = ""

    def _answer(self, zap: zmq.Socket) -> None:
        request = zap.recv_multipart()
        if len(request) < 6 or request[0] != b"1.0":
            zap.send_multipart([b"1.0", request[1] if len(request) > 1 else b"", b"500",
                                b"bad ZAP request", b"", b""])
            return
        _version, request_id, domain, address, _identity, mechanism, *credentials = request
        try:
            ok, user = self.decide(domain, address.decode("utf-8", "replace"), mechanism, credentials)
        except Exception:
            log.exception("ZAP decision failed; refusing the connection")
            ok, user = False, ""
        status = [b"200", b"OK"] if ok else [b"400", b"not authorized"]
        zap.send_multipart([b"1.0", request_id, *status, user.encode("utf-8"), b""])

    def _on_event(self, frames: list[bytes]) -> None:
        log_monitor_event(parse_monitor_event(frames), self.ports)


_MONITOR_EVENT = struct.Struct("=HI")  # libzmq's first monitor frame: event id, value


def parse_monitor_event(frames: list[bytes]) -> dict[str, Any]:
    """A socket-monitor message as {event, value, endpoint}.

    pyzmq's ``zmq.utils.monitor`` does the same but imports asyncio, which
    would cost the supervisor 8 MiB of memory for two struct fields.
    """
    event, value = _MONITOR_EVENT.unpack_from(frames[0])
    return {"event": event, "value": value, "endpoint": frames[1] if len(frames) > 1 else b""}


def log_monitor_event(event: dict[str, Any], ports: dict[int, str]) -> None:
    """One (rate-limited) log line for a refused handshake or a departure."""
    endpoint = event["endpoint"].decode("utf-8", "replace")
    channel = ports.get(_port_of(endpoint), endpoint)
    kind, value = event["event"], event["value"]
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        why = ("it does not encrypt" if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
               else "wrong server key or not a ZeroMQ client")
        _limited(f"{channel}-{why}", logging.WARNING, "%s: refused a client: %s", channel, why)
    elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        _limited(f"fail-{channel}", logging.WARNING, "%s: a client's handshake failed", channel)
    elif kind == zmq.EVENT_DISCONNECTED:
        _limited(f"gone-{channel}", logging.INFO,
                 "%s: a client disconnected (left, lost, or sent an oversized message)", channel)


def _port_of(endpoint: str) -> int:
    try:
        return int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


_LOG_BURST, _LOG_WINDOW = 5, 10.0
_log_state: dict[str, tuple[float, int, int]] = {}  # kind -> (window start, lines, swallowed)


def _limited(kind: str, level: int, fmt: str, *args: object) -> None:
    """Log at most a few lines per kind every few seconds, so a flood cannot flood the log."""
    now = time.monotonic()
    start, lines, swallowed = _log_state.get(kind, (now, 0, 0))
    if now - start > _LOG_WINDOW:
        if swallowed:
            log.log(level, "(%d more like the next one in the last %.0f s)", swallowed, now - start)
        start, lines, swallowed = now, 0, 0
    if lines < _LOG_BURST:
        log.log(level, fmt, *args)
        lines += 1
    else:
        swallowed += 1
    _log_state[kind] = (start, lines, swallowed)
