"""The supervisor: owns the public sockets, never runs user code, keeps workers alive.

It forwards client requests to the worker and everything the worker says to
the clients, remembering which requests are still unanswered. When the
worker dies it answers those (an error for the cell that was running), brings
back a worker on the same ports from the latest snapshot or checkpoint, and
publishes a recovery report. See docs/internals.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.paths import checkpoints_dir, remove_stale_temporaries
from ipytui.kernel.protocol.protection_settings import ProtectionSettings
from ipytui.kernel.protocol.wire import (
    DELIM,
    Codec,
    Message,
    WireError,
    peek_header,
    peek_parent,
    split_identities,
)
from ipytui.kernel.supervisor import crash_report
from ipytui.kernel.supervisor.crash_handling import CrashHandling
from ipytui.kernel.supervisor.inflight import Pending, WorkerState, is_execute
from ipytui.kernel.supervisor.journal_writer import JournalWriter
from ipytui.kernel.supervisor.lockfile import LockKeeper, new_lock
from ipytui.kernel.supervisor.presence_service import PresenceService
from ipytui.kernel.supervisor.recorder import Recorder
from ipytui.kernel.supervisor.requests import REVOKED, Requests
from ipytui.kernel.supervisor.security import ServerSecurity
from ipytui.kernel.supervisor.time_travel import TimeTravel
from ipytui.kernel.supervisor.worker_lifecycle import WorkerLifecycle
from ipytui.kernel.supervisor.worker_link import WorkerLink
from ipytui.kernel.supervisor.zmq_send import send_frames

log = logging.getLogger("ipytui.supervisor")

READY_TIMEOUT = 3.0  # seconds to wait for a new worker before answering the crash anyway
MAX_CLIENT_FRAMES = 4096  # routing ids + 6 + buffers; the worker pipes take at most 65536


class Supervisor(Requests, WorkerLifecycle, CrashHandling, TimeTravel):
    """One kernel: public sockets, routing, the worker's lifecycle (crashes: CrashHandling)."""

    def __init__(self, info: ConnectionInfo, connection_file: Path, *, snapshots: bool = True,
                 owns_connection_file: bool = False, restore_from: str | None = None,
                 security: ServerSecurity | None = None, exit_on_restart: bool = False,
                 settings: ProtectionSettings | None = None) -> None:
        self.info = info
        self.init_time_travel(settings or ProtectionSettings())
        self.exit_on_restart = exit_on_restart
        self.security = security or ServerSecurity.for_kernel(info)
        self.connection_file = Path(connection_file)
        self.owns_connection_file = owns_connection_file
        self.kernel_id = procs.kernel_id_from(self.connection_file)
        self.codec = Codec(info.key, info.signature_scheme, username="kernel")
        self.snapshots = snapshots
        self.checkpoint_path = checkpoints_dir() / f"{self.kernel_id}.pickle"
        self.restore_from = restore_from
        self.journal_session: int | None = None
        self.restart_due: tuple[float, crash_report.CrashRecord, tuple[int, int]] | None = None
        self.crash_running: Pending | None = None
        self.last_ok_count = 0  # the last good, state-changing cell (its snapshot follows)
        self.crash_queued: list[Pending] = []
        self.worker = WorkerState()
        self.inflight: dict[str, Pending] = {}
        self.backlog: list[tuple[str, list[bytes], bool]] = []  # (channel, frames, is an execute)
        self.asking: bytes | None = None  # routing id of the client the open input() asked
        self.execution_count = 0
        self.crashes = crash_report.CrashHistory()
        self.crash_pending: crash_report.CrashRecord | None = None
        self.running = True
        self.started = time.time()
        self.restarts = 0
        self.last_crash = ""
        self.given_up = ""  # why no worker is restarted any more, or ""
        self.lock = new_lock(self.kernel_id, str(self.connection_file), str(self.checkpoint_path),
                             owns_connection_file=owns_connection_file)
        self.lock_keeper = LockKeeper(self.lock)

    # -- sockets ----------------------------------------------------------
    def bind(self) -> None:
        """Bind the five public channels and the socket the worker's pipes connect to."""
        ctx = self.context = zmq.Context()
        info = self.info
        self.security.start(ctx)
        self.shell = self._router(info.bind_url("shell"))
        self.control = self._router(info.bind_url("control"))
        self.stdin = self._router(info.bind_url("stdin"))
        self.iopub = ctx.socket(zmq.XPUB)
        self.iopub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.iopub.linger = 1000
        self.iopub.sndhwm = 0
        self.security.secure(self.iopub)
        self.iopub.bind(info.bind_url("iopub"))
        self.hb = ctx.socket(zmq.ROUTER)
        self.hb.linger = 0
        self.security.secure(self.hb, heartbeat=True)
        self.hb.bind(info.bind_url("hb"))
        threading.Thread(target=self._heartbeat, name="ipytui-hb", daemon=True).start()
        self.private_dir = tempfile.mkdtemp(prefix="ipytui-")
        self.poller = zmq.Poller()
        self.link = WorkerLink(f"{self.private_dir}/pipe", self.poller, on_up=self._on_up,
                               on_connected=self._check_ready, on_broken=self._on_pipe_broken)

    def _router(self, url: str) -> zmq.Socket:
        sock = self.context.socket(zmq.ROUTER)
        sock.linger = 1000
        sock.sndhwm = 0
        self.security.secure(sock)
        sock.bind(url)
        return sock

    def _heartbeat(self) -> None:
        """Echo every ping back to its sender, in C, off the main loop."""
        try:
            zmq.proxy(self.hb, self.hb)
        except zmq.ZMQError:
            return

    # -- worker lifecycle -------------------------------------------------
    # -- sending ----------------------------------------------------------
    def publish(self, channel: str, msg_type: str, content: dict[str, Any],
                parent: Message | None = None, identities: list[bytes] | None = None) -> None:
        msg = self.codec.msg(msg_type, content, parent=parent)
        if channel == "iopub":
            send_frames(self.iopub, self.codec.serialize(msg, [msg_type.encode()]))
        else:
            sock = self.shell if channel == "shell" else self.control
            self.codec_send(sock, msg, identities or [])

    def codec_send(self, sock: zmq.Socket, msg: Message, identities: list[bytes]) -> None:
        try:
            send_frames(sock, self.codec.serialize(msg, identities))
        except zmq.ZMQError as exc:
            log.warning("could not send %s: %s", msg.msg_type, exc)

    def _answer(self, pending: Pending, reply_type: str, content: dict[str, Any],
                busy: bool = True) -> None:
        """Reply to a request ourselves, with busy/idle around it like the worker would."""
        if pending.msg.msg_type == "execute_request":
            self.presence.finished(pending.msg.msg_id)
        if busy:
            self.publish("iopub", "status", {"execution_state": "busy"}, parent=pending.msg)
        self.publish(pending.channel, reply_type, content, parent=pending.msg,
                     identities=pending.msg.identities)
        self.publish("iopub", "status", {"execution_state": "idle"}, parent=pending.msg)

    def to_worker(self, channel: str, frames: list[bytes], execute: bool = False) -> None:
        """Send to the live worker, or keep in the backlog until one is ready.

        Executes go to the pipe its main thread reads, everything else to its
        listener thread's, so they are answered while a cell runs.
        """
        if self.given_up:
            self._refuse(channel, frames)
            return
        if not self.worker.ready or self.backlog:
            self.backlog.append((channel, frames, execute))
            return
        if not self.link.send("exec" if execute else "quick", [channel.encode(), *frames]):
            self.backlog.append((channel, frames, execute))

    def _flush_backlog(self) -> None:
        backlog, self.backlog = self.backlog, []
        for channel, frames, execute in backlog:
            self.to_worker(channel, frames, execute)

    # -- incoming ---------------------------------------------------------
    def on_client(self, channel: str, sock: zmq.Socket) -> None:
        """A request from a client: verify, answer ourselves or forward."""
        frames = self.security.recv(sock)  # notes the sender's authenticated name
        if len(frames) > MAX_CLIENT_FRAMES:
            log.warning("dropped a message of %d frames on %s", len(frames), channel)
            return
        try:
            msg = self.codec.deserialize(frames)
        except WireError as exc:
            log.warning("dropped a message on %s: %s", channel, exc)
            return
        if channel == "stdin":
            self._on_stdin(msg, frames, revoked=self.security.last_revoked)
            return
        if self.security.last_revoked:
            self._revoked(channel, msg)
            return
        self.presence.on_request(channel, msg, self.security.last_fd,
                                 self.security.peer_name(msg.identities))
        if self.presence.handles(msg):
            self.presence.on_comm(msg)
            return
        handler = getattr(self, f"do_{msg.msg_type}", None)
        if handler is not None:
            handler(channel, msg)
            return
        if msg.msg_type.endswith("_request"):
            self.inflight[msg.msg_id] = Pending(channel, msg, frames)
        self.to_worker(channel, frames, is_execute(channel, msg))

    def _on_stdin(self, msg: Message, frames: list[bytes], revoked: bool) -> None:
        """An input_reply goes to the worker only from the client its input() asked:
        nobody else can answer (or race) another user's prompt. A revoked key's
        answer becomes an error, so that input() ends instead of waiting forever."""
        if msg.msg_type != "input_reply" or self.asking is None or msg.identities[:1] != [self.asking]:
            log.warning("dropped a %s from a client that was not asked for input", msg.msg_type)
            return
        if revoked:
            msg.content = {"status": "error", "value": "", "ename": "PermissionError",
                           "evalue": REVOKED}
            frames = self.codec.serialize(msg)
        self.asking = None  # one answer per prompt
        self.to_worker("stdin", frames)

    def _client_left(self, routing_id: bytes) -> None:
        """The client an input() waits for is gone: end the prompt (EOFError), or
        the kernel would wait for it, and everyone behind it, until an interrupt."""
        if self.asking != routing_id:
            return
        self.asking = None
        reply = self.codec.msg("input_reply", {"status": "error", "value": "",
                                               "evalue": "the client asked for input left"})
        self.to_worker("stdin", self.codec.serialize(reply, [routing_id]))
        log.info("the client asked for input left; its input() ends with EOFError")

    def _on_up(self, frames: list[bytes]) -> None:
        """Everything the worker says: forward, and keep the books."""
        channel = frames[0]
        body = frames[1:]
        if channel == b"iopub":
            send_frames(self.iopub, body)
            self._watch_iopub(body)
        elif channel in (b"shell", b"control"):
            # The client first, the books after: the reply is on the critical path.
            send_frames(self.shell if channel == b"shell" else self.control, body)
            pending = self.inflight.pop(peek_parent(body).get("msg_id", ""), None)
            if pending is not None and pending.msg.msg_type == "execute_request":
                self.worker.cell_done_due = True
                self._record_reply(pending, body)
                self.presence.finished(pending.msg.msg_id)
        elif channel == b"stdin":
            send_frames(self.stdin, body)
            ids = split_identities(body)[0]
            self.asking = ids[0] if ids else None  # who may answer this prompt
        elif channel == b"sup":
            self._on_sup(json.loads(body[0]))

    def _watch_iopub(self, body: list[bytes]) -> None:
        # The worker's IOPub topic frame is the msg_type: no JSON to parse for it.
        if len(body) > 1 and body[1] == DELIM:
            msg_type = body[0].decode("utf-8", "replace")
        else:
            msg_type = peek_header(body).get("msg_type")
        if msg_type == "status":
            return
        if msg_type != "execute_input":
            self.recorder.iopub(body)
            return
        pending = self.inflight.get(peek_parent(body).get("msg_id", ""))
        _, rest = split_identities(body)
        count = int(json.loads(rest[4]).get("execution_count") or 0)
        self.execution_count = max(self.execution_count, count)
        if pending is not None:
            pending.started = True
            pending.count = count
            self.recorder.started(pending.msg.as_dict(), count)
            self.presence.running(pending.msg.msg_id, count)

    def _recent_cells(self, n: int) -> list[dict[str, Any]]:
        """The last n cells of this kernel with outputs, for a late joiner."""
        self.recorder.wait_written()
        return self.journal.recent_cells(self.kernel_id, n) or []

    def _record_reply(self, pending: Pending, body: list[bytes]) -> None:
        _, rest = split_identities(body)
        content = json.loads(rest[4])
        self.recorder.finished(pending.msg.msg_id, str(content.get("status", "ok")), content.get("ename"))

    # -- main loop --------------------------------------------------------
    def run(self) -> None:
        """Serve until a shutdown_request (or SIGTERM)."""
        self.journal = JournalWriter()
        self.journal_session = self.journal.open_session(
            self.kernel_id, pid=os.getpid(), host=self.lock.host, connection_file=str(self.connection_file))
        self.lock.journal_session = self.journal_session or 0
        self.presence = PresenceService(
            self.publish, self._recent_cells,
            log_event=self.security.log_event, on_departure=self._client_left)
        self.recorder = Recorder(self.journal, self.journal_session)
        self.recorder.start()
        self.lock.write()
        _become_subreaper()
        signal.signal(signal.SIGINT, lambda *_: self.interrupt_worker())
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        if self.restore_from:
            self.spawn_worker(self.restore_from)
        else:
            self.spawn_worker()
        poller = self.poller
        sockets = {self.shell: "shell", self.control: "control", self.stdin: "stdin"}
        monitor = self.presence.watch(self.shell)
        for sock in (*sockets, self.iopub, monitor):
            poller.register(sock, zmq.POLLIN)
        registered_fd = -1
        while self.running:
            if registered_fd != self.worker.pidfd:
                if registered_fd >= 0:
                    poller.unregister(registered_fd)
                registered_fd = self.worker.pidfd
                if registered_fd >= 0:
                    poller.register(registered_fd, zmq.POLLIN)
            timeout = 100 if self.crash_pending is not None else self.lock_keeper.due_ms()
            timeout = min(timeout, self.guard.due_ms() + 1)
            events = dict(poller.poll(timeout))
            self.link.handle(events)
            for sock, channel in sockets.items():
                if sock in events:
                    self.on_client(channel, sock)
            if self.iopub in events:
                self._on_subscription(self.iopub.recv())
            if monitor in events:
                self.presence.on_monitor()
            if registered_fd >= 0 and registered_fd in events:
                poller.unregister(registered_fd)
                registered_fd = -1
                self._drain_worker_output()
                self._on_worker_exit()
            if self.restart_due is not None:
                self._bring_back()
            self._check_crash_deadline()
            self._guard_memory()
            self.presence.flush()
            table = self.presence.table
            self.lock_keeper.update(len(table.peers), "busy" if table.queue else "idle")
        self.shutdown()

    def _drain_worker_output(self) -> None:
        """Forward what a dying worker managed to say before answering for it."""
        self.link.read_up()  # it is dead: what it wrote is all in the pipe already

    def _check_crash_deadline(self) -> None:
        record = self.crash_pending
        if (record is not None and self.restart_due is None
                and time.monotonic() - max(record.died_at, record.restart_began) > READY_TIMEOUT):
            self._finish_crash(None)

    def _on_subscription(self, frame: bytes) -> None:
        """Greet each new IOPub subscriber (iopub_welcome, spec 5.4)."""
        if frame[:1] == b"\x01":
            self.publish("iopub", "iopub_welcome", {"subscription": frame[1:].decode("utf-8", "replace")})

    def shutdown(self) -> None:
        """Stop the worker and snapshots, remove the lock (a clean stop)."""
        self.running = False
        if self.worker.snapshot_pid:
            procs.kill(self.worker.snapshot_pid)
        self.chain.kill_all()
        if self.worker.pid:
            self._stop_worker(self.worker)
        self.recorder.stop()
        if self.journal_session is not None:
            self.journal.end_session(self.journal_session, "shutdown")
        self.lock.remove()
        self.checkpoint_path.unlink(missing_ok=True)
        remove_stale_temporaries(self.checkpoint_path)
        self.link.close()
        shutil.rmtree(self.private_dir, ignore_errors=True)
        if self.owns_connection_file:
            self.connection_file.unlink(missing_ok=True)
        self.context.destroy(linger=200)


def _become_subreaper() -> None:
    """Orphaned snapshots re-parent to us, so we can promote and reap them."""
    try:
        import ctypes

        pr_set_child_subreaper = 36
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1)
    except (OSError, AttributeError):
        log.warning("cannot become a child subreaper; snapshots may not be promotable")
