"""The supervisor's side of presence: feeds the PeerTable and publishes it.

Presence lives in the supervisor, so it survives worker crashes and
restarts. Updates go to every open ``ipytui.presence`` comm as a comm_msg
on IOPub; a new comm first gets the recent shared stream from the journal.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import zmq
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.supervisor.presence import TARGET, PeerTable, PresenceError
from ipytui.kernel.supervisor.security import WATCHED_EVENTS, parse_monitor_event

RECHECK_S = 0.2  # a disconnected fd still open is looked at again this much later
RECHECKS = 5  # ...this many times, then its peer is taken for a live connection

log = logging.getLogger("ipytui.supervisor")

REPLAY_CELLS = 20

Publish = Callable[..., None]


class PresenceService:
    """Peer bookkeeping for one supervisor; ``publish`` sends on IOPub."""

    def __init__(self, publish: Publish, recent: Callable[[int], dict[str, Any]],
                 log_event: Callable[[dict[str, Any]], None] = lambda event: None,
                 on_departure: Callable[[bytes], None] = lambda routing_id: None) -> None:
        self.table = PeerTable()
        self._publish = publish
        self._recent = recent  # n -> {"cells": [...], "events": [...]} from the journal
        # shell connection fd -> [(routing id, the peer's address when it was seen)]:
        # a closed fd is reused by the next connection, often before its disconnect
        # event is read, so an event only ends the ids whose connection is gone.
        self._fds: dict[int, list[tuple[bytes, Any]]] = {}
        self._rechecks: list[tuple[int, float, int]] = []  # (fd, when, tries left)
        self.monitor: zmq.Socket | None = None
        self._log_event = log_event
        self._on_departure = on_departure  # a client's shell connection closed (its routing id)

    def watch(self, shell: zmq.Socket) -> zmq.Socket:
        """Monitor the shell socket for disconnects; ZMTP heartbeats catch dead networks."""
        shell.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        shell.setsockopt(zmq.HEARTBEAT_TIMEOUT, 4000)
        # One monitor per socket: this one also reports refused handshakes for security's log.
        self.monitor = shell.get_monitor_socket(zmq.EVENT_DISCONNECTED | WATCHED_EVENTS)
        return self.monitor

    def on_monitor(self) -> None:
        assert self.monitor is not None
        event = parse_monitor_event(self.monitor.recv_multipart())
        self._log_event(event)
        if event.get("event") != zmq.EVENT_DISCONNECTED:
            return
        fd = int(event.get("value", -1))
        if self._settle(fd):
            # The fd still has the peer that was seen on it: the dying connection not
            # closed yet (libzmq tells before it closes), or one we never heard from.
            self._rechecks.append((fd, time.monotonic() + RECHECK_S, RECHECKS))

    def _settle(self, fd: int) -> bool:
        """End the routing ids whose connection on ``fd`` is gone; True if the fd still
        shows the very peer they were seen from (undecided for now)."""
        seen = self._fds.pop(fd, [])
        now = _peer_of(fd)  # the connection on this fd now, if a new one took it
        alive = [(rid, peer) for rid, peer in seen if now is not None and peer == now]
        if alive:
            self._fds[fd] = alive
        for routing_id, peer in seen:
            if (routing_id, peer) not in alive:
                self.table.disconnected(routing_id)
                self._on_departure(routing_id)
        return bool(alive)

    def _recheck_departures(self) -> None:
        """Look again at fds whose disconnect came while their socket was still open."""
        due, now = [], time.monotonic()
        for fd, when, left in self._rechecks:
            if when > now:
                due.append((fd, when, left))
            elif self._settle(fd) and left > 1:
                due.append((fd, now + RECHECK_S, left - 1))
        self._rechecks = due

    def on_request(self, channel: str, msg: Message, fd: int, authenticated: str | None) -> None:
        """Every verified request: note its sender (shell ties it to a connection)."""
        identities = msg.identities if channel == "shell" else []
        if identities and fd >= 0:
            seen = self._fds.setdefault(fd, [])
            if not seen or seen[-1][0] != identities[0]:
                seen.append((identities[0], _peer_of(fd)))
        peer = self.table.seen(msg.header, identities, authenticated)
        if peer is not None and msg.msg_type == "execute_request" and channel == "shell":
            code = msg.content.get("code", "")
            self.table.queued(peer.session, msg.msg_id, code if isinstance(code, str) else "")

    def handles(self, msg: Message) -> bool:
        """True for comm messages of our presence target (which never reach the worker)."""
        if msg.msg_type == "comm_open":
            return msg.content.get("target_name") == TARGET
        if msg.msg_type in ("comm_msg", "comm_close"):
            return msg.content.get("comm_id") in self.table.comms
        return False

    def on_comm(self, msg: Message) -> None:
        comm_id = msg.content.get("comm_id")
        data = msg.content.get("data") or {}
        session = msg.header.get("session", "")
        try:
            if not isinstance(comm_id, str) or not isinstance(data, dict):
                raise PresenceError("comm_id must be a string and data an object")
            if msg.msg_type == "comm_open":
                self.table.open_comm(comm_id, session, data)
                self._send(comm_id, {"type": "replay", **self._recent(REPLAY_CELLS)}, msg)
            elif msg.msg_type == "comm_msg":
                self.table.update(comm_id, session, data)
            else:
                self.table.close_comm(comm_id, session)
        except PresenceError as exc:
            log.warning("refused a presence %s from %s: %s", msg.msg_type, session[:8], exc)

    def running(self, msg_id: str, cell: int) -> None:
        self.table.running(msg_id, cell)

    def finished(self, msg_id: str) -> None:
        self.table.finished(msg_id)

    def flush(self) -> None:
        """Broadcast the table if it changed (after settling pending departures)."""
        if self._rechecks:
            self._recheck_departures()
        if not self.table.dirty:
            return
        if not self.table.comms:  # nobody listens: building the snapshot is wasted
            self.table.dirty = False
            return
        snapshot = self.table.snapshot()
        for comm_id in list(self.table.comms):
            self._send(comm_id, snapshot, None)

    def _send(self, comm_id: str, data: dict[str, Any], parent: Message | None) -> None:
        self._publish("iopub", "comm_msg", {"comm_id": comm_id, "data": data}, parent=parent)



def _peer_of(fd: int) -> Any:
    """Who is at the other end of connection ``fd`` now (address, or the process for a
    Unix socket), None if the fd is closed. Tells a reused fd's new peer from its old."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if sock.family == socket.AF_UNIX:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return sock.getpeername()
    except OSError:
        return None
    finally:
        sock.close()
