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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.paths import checkpoints_dir, private_dir_prefix
from ipytui.kernel.protocol.protection_settings import ProtectionSettings
from ipytui.kernel.protocol.replay import DEFAULT_REPLAY_WINDOW
from ipytui.kernel.protocol.wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DELIM,
    Codec,
    Message,
    peek_header,
    peek_parent,
    split_identities,
)
from ipytui.kernel.supervisor import crash_report
from ipytui.kernel.supervisor.announce import Announcer
from ipytui.kernel.supervisor.crash_handling import CrashHandling
from ipytui.kernel.supervisor.culling import DEFAULT_CULL_AFTER, Culling
from ipytui.kernel.supervisor.disk_health import DiskHealth
from ipytui.kernel.supervisor.faults import Faults
from ipytui.kernel.supervisor.inflight import Pending, WorkerState
from ipytui.kernel.supervisor.intake import Intake
from ipytui.kernel.supervisor.journal_writer import JournalWriter
from ipytui.kernel.supervisor.lockfile import LockKeeper, new_lock
from ipytui.kernel.supervisor.presence_service import PresenceService
from ipytui.kernel.supervisor.recorder import Recorder
from ipytui.kernel.supervisor.requests import Requests
from ipytui.kernel.supervisor.security import ServerSecurity
from ipytui.kernel.supervisor.silencer import Silencer
from ipytui.kernel.supervisor.sockets import make_iopub, make_router
from ipytui.kernel.supervisor.time_travel import TimeTravel
from ipytui.kernel.supervisor.worker_lifecycle import WorkerLifecycle
from ipytui.kernel.supervisor.worker_link import WorkerLink
from ipytui.kernel.supervisor.zmq_send import send_frames

log = logging.getLogger("ipytui.supervisor")

FAILURE_LOG_INTERVAL = 5.0  # seconds between log lines of one loop step that keeps failing
READY_TIMEOUT = 3.0  # seconds to wait for a new worker before answering the crash anyway


class Supervisor(Intake, Requests, WorkerLifecycle, CrashHandling, Culling, Announcer, TimeTravel):
    """One kernel: public sockets, routing, the worker's lifecycle (crashes: CrashHandling)."""

    def __init__(self, info: ConnectionInfo, connection_file: Path, *, snapshots: bool = True,
                 owns_connection_file: bool = False, restore_from: str | None = None,
                 security: ServerSecurity | None = None, exit_on_restart: bool = False,
                 replay_window: float = DEFAULT_REPLAY_WINDOW,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 launched_by: str = "user", cull_after: float = DEFAULT_CULL_AFTER,
                 settings: ProtectionSettings | None = None) -> None:
        self.info = info
        self.init_time_travel(settings or ProtectionSettings())
        self.exit_on_restart = exit_on_restart
        self.security = security or ServerSecurity.for_kernel(info)
        self.connection_file = Path(connection_file)
        self.owns_connection_file = owns_connection_file
        self.kernel_id = procs.kernel_id_from(self.connection_file)
        # Strict: every header checked against the schema; replays refused within the window.
        self.codec = Codec(info.key, info.signature_scheme, username="kernel", strict=True,
                           replay_window=replay_window, max_message_bytes=max_message_bytes)
        self.faults = Faults()
        self._failures: dict[str, tuple[float, int]] = {}  # loop step -> (last logged, swallowed)
        self.snapshots = snapshots
        self.checkpoint_path = checkpoints_dir() / f"{self.kernel_id}.pickle"
        self.restore_from = restore_from
        self.recovery_told = False  # the "recovered" event, once, for a kernel started from a checkpoint
        self.restored_after = 0  # the cell whose state the last restore brought back
        self.user_names = 0  # names the user defined, as the worker last counted them
        self.journal_session: int | None = None
        self.restart_due: tuple[float, crash_report.CrashRecord, tuple[int, int]] | None = None
        self.crash_running: Pending | None = None
        self.last_ok_count = 0  # the last good, state-changing cell (its snapshot follows)
        self.crash_queued: list[Pending] = []
        self.worker = WorkerState()
        self.inflight: dict[str, Pending] = {}
        self.backlog: list[tuple[str, list[bytes], bool]] = []  # (channel, frames, main thread's)
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
                             owns_connection_file=owns_connection_file, launched_by=launched_by,
                             cull_after=cull_after)
        self.init_culling(cull_after)
        self.restores_waiting: list[tuple[str, Message, float]] = []  # (channel, request, deadline)
        self.silencer = Silencer()  # an interrupted cell's output still on its way
        self.disk = DiskHealth()  # paused journal/checkpoint/lock writes, told to clients
        self.lock_keeper = LockKeeper(self.lock, on_error=lambda exc: self.disk.failed("lock", exc),
                                      on_ok=lambda: self.disk.ok("lock"))

    # -- sockets ----------------------------------------------------------
    def bind(self) -> None:
        """Bind the five public channels and the socket the worker's pipes connect to."""
        ctx = self.context = zmq.Context()
        info = self.info
        self.security.start(ctx)
        self.shell = make_router(ctx, self.security, info.bind_url("shell"))
        self.control = make_router(ctx, self.security, info.bind_url("control"))
        self.stdin = make_router(ctx, self.security, info.bind_url("stdin"))
        self.iopub = make_iopub(ctx, self.security, info.bind_url("iopub"))  # bounded: see sockets
        self.hb = ctx.socket(zmq.ROUTER)
        self.hb.linger = 0
        self.security.secure(self.hb, heartbeat=True)
        self.hb.bind(info.bind_url("hb"))
        threading.Thread(target=self._heartbeat, name="ipytui-hb", daemon=True).start()
        self.private_dir = tempfile.mkdtemp(prefix=private_dir_prefix())
        self.poller = zmq.Poller()
        self.link = WorkerLink(f"{self.private_dir}/pipe", self.poller, on_up=self._on_up,
                               on_connected=self._check_ready, on_broken=self._on_pipe_broken)

    def _heartbeat(self) -> None:
        """Echo every ping back to its sender, in C, off the main loop."""
        try:
            zmq.proxy(self.hb, self.hb)
        except zmq.ZMQError:
            return

    # -- sending ----------------------------------------------------------
    def publish(self, channel: str, msg_type: str, content: dict[str, Any], parent: Message | None = None,
                identities: list[bytes] | None = None, metadata: dict[str, Any] | None = None) -> None:
        msg = self.codec.msg(msg_type, content, parent=parent, metadata=metadata)
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
                busy: bool = True, metadata: dict[str, Any] | None = None) -> None:
        """Reply to a request ourselves, with busy/idle around it like the worker would."""
        if pending.msg.msg_type == "execute_request":
            self.presence.finished(pending.msg.msg_id)
        if busy:
            self.publish("iopub", "status", {"execution_state": "busy"}, parent=pending.msg)
        self.publish(pending.channel, reply_type, content, parent=pending.msg,
                     identities=pending.msg.identities, metadata=metadata)
        self.publish("iopub", "status", {"execution_state": "idle"}, parent=pending.msg)

    def to_worker(self, channel: str, frames: list[bytes], execute: bool = False) -> None:
        """Send to the live worker, or keep in the backlog until one is ready.

        Executes and shell comm messages go, in arrival order, to the pipe its main
        thread reads (``inflight.for_main_thread``), everything else to its listener
        thread's, so they are answered while a cell runs.
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

    # -- incoming (clients: see Intake) -----------------------------------
    def _on_up(self, frames: list[bytes]) -> None:
        """Everything the worker says: forward, and keep the books; never raise."""
        try:
            self._forward_up(frames)
        except Exception:  # noqa: BLE001 - one odd message must not end the kernel
            log.exception("the supervisor failed on a message from the worker; it keeps serving")

    def _forward_up(self, frames: list[bytes]) -> None:
        channel = frames[0]
        body = frames[1:]
        if channel == b"iopub":
            if self.silencer.drops(body):
                return
            send_frames(self.iopub, body)
            self._watch_iopub(body)
        elif channel in (b"shell", b"control"):
            # The client first, the books after: the reply is on the critical path.
            send_frames(self.shell if channel == b"shell" else self.control, body)
            self.faults.hit("up:books")
            pending = self.inflight.pop(peek_parent(body).get("msg_id", ""), None)
            if pending is not None and pending.msg.msg_type == "execute_request":
                self.worker.answered(pending)
                self._record_reply(pending, body)
                self.presence.finished(pending.msg.msg_id)
                self._note_silenced(pending)
        elif channel == b"stdin":
            send_frames(self.stdin, body)
            ids = split_identities(body)[0]
            self.asking = ids[0] if ids else None  # who may answer this prompt
        elif channel == b"sup":
            self._on_sup(json.loads(body[0]))

    def _note_silenced(self, pending: Pending) -> None:
        """Say, before the cell's idle, how much of its output the interrupt cut."""
        dropped = self.silencer.finish(pending.msg.msg_id)
        if dropped:
            self.publish("iopub", "stream", {"name": "stderr", "text": (
                f"[ipytui] {dropped} output messages still on their way were dropped "
                "at the interrupt\n")}, parent=pending.msg)

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

    def _recent(self, n: int) -> dict[str, Any]:
        """The last n cells of this kernel with outputs, and the shared events since
        the first of them, for a late joiner."""
        self.recorder.wait_written()
        cells = self.journal.recent_cells(self.kernel_id, n) or []
        # All of them while the cells go back to the start; else from the first cell shown.
        since = float(cells[0].get("started") or 0.0) if len(cells) >= n else 0.0
        return {"cells": cells, "events": self.journal.recent_events(self.kernel_id, since) or []}

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
            self.publish, self._recent,
            log_event=self.security.log_event, on_departure=self._client_left)
        self.recorder = Recorder(self.journal, self.journal_session, health=self.disk)
        self.recorder.start()
        self.lock_keeper.write_now()
        _become_subreaper()
        signal.signal(signal.SIGINT, lambda *_: self.interrupt_running())
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
            timeout = (20 if self.restores_waiting else 100 if self.crash_pending is not None
                       else self.lock_keeper.due_ms())
            timeout = min(timeout, self.guard.due_ms() + 1)
            events = dict(poller.poll(timeout))
            # Each step is guarded on its own: one failing cannot end the loop or skip the rest.
            self._safely(self.link.handle, events)
            for sock, channel in sockets.items():
                if sock in events:
                    self.on_client(channel, sock)  # guards itself, and answers for a failure
            if self.iopub in events:
                self._safely(self._on_subscription)
            if monitor in events:
                self._safely(self.presence.on_monitor)
            if registered_fd >= 0 and registered_fd in events:
                poller.unregister(registered_fd)
                registered_fd = -1
                self._safely(self._drain_worker_output)
                self._safely(self._on_worker_exit)
            if self.restart_due is not None:
                self._safely(self._bring_back)
            self._safely(self.check_restores)
            self._safely(self._check_crash_deadline)
            self._safely(self._guard_memory)
            self._safely(self.tell_timeline)
            self._safely(self.presence.flush)
            self._safely(self.check_idle)
            table = self.presence.table
            self._safely(self.lock_keeper.update, len(table.peers), "busy" if table.queue else "idle")
            self._safely(self.disk.flush, self.publish)
        self.shutdown()

    def _drain_worker_output(self) -> None:
        """Forward what a dying worker managed to say before answering for it."""
        self.link.read_up()  # it is dead: what it wrote is all in the pipe already

    def _check_crash_deadline(self) -> None:
        record = self.crash_pending
        if (record is not None and self.restart_due is None
                and time.monotonic() - max(record.died_at, record.restart_began) > READY_TIMEOUT):
            self._finish_crash(None)

    def _safely(self, step: Callable[..., object], *args: object) -> None:
        """Run one step of the loop; an exception is logged and the loop goes on.

        A step that keeps failing is logged with its traceback once per
        FAILURE_LOG_INTERVAL, with a count, so a fault that repeats on every
        turn cannot fill the disk with the same lines.
        """
        try:
            self.faults.hit("loop")
            step(*args)
        except Exception:  # noqa: BLE001 - the supervisor must outlive every handler
            name = getattr(step, "__qualname__", repr(step))
            last, swallowed = self._failures.get(name, (-FAILURE_LOG_INTERVAL, 0))
            now = time.monotonic()
            if now - last < FAILURE_LOG_INTERVAL:
                self._failures[name] = (last, swallowed + 1)
                return
            self._failures[name] = (now, 0)
            log.exception("the supervisor failed in %s (%d more times since the last such line); "
                          "it keeps serving", name, swallowed)

    def _on_subscription(self) -> None:
        """Greet each new IOPub subscriber (iopub_welcome, spec 5.4)."""
        frame = self.iopub.recv()
        if frame[:1] == b"\x01":
            self.publish("iopub", "iopub_welcome", {"subscription": frame[1:].decode("utf-8", "replace")})

    def shutdown(self) -> None:
        """Stop the worker and snapshots, remove the lock (a clean stop)."""
        self.running = False
        if self.worker.snapshot_pid:
            procs.kill_snapshot(self.worker.snapshot_pid)
        self.chain.kill_all()
        if self.worker.pid:
            self._stop_worker(self.worker)
        self.recorder.stop()
        if self.journal_session is not None:
            self.journal.end_session(self.journal_session, "culled" if self.culled else "shutdown")
        self.leave_lock()
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
