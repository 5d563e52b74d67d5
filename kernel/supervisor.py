"""The supervisor: owns the public sockets, never runs user code, keeps workers alive.

It forwards client requests to the worker and everything the worker says to
the clients, remembering which requests are still unanswered. When the
worker dies it answers those (an error for the cell that was running), brings
back a worker on the same ports from the latest snapshot or checkpoint, and
publishes a recovery report. See docs/internals.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from . import crash
from .connection import ConnectionInfo
from .crash_handling import CrashHandling
from .inflight import Pending, WorkerState, is_execute
from .info import kernel_info_content
from .journal import Journal
from .lockfile import new_lock
from .paths import checkpoints_dir
from .presence_service import PresenceService
from .recorder import Recorder
from .security import ServerSecurity
from .wire import DELIM, Codec, Message, WireError, peek_header, peek_parent, split_identities
from .worker_link import WorkerLink
from .zmq_send import send_frames

log = logging.getLogger("ipytui.supervisor")

READY_TIMEOUT = 3.0  # seconds to wait for a new worker before answering the crash anyway
MAX_CLIENT_FRAMES = 4096  # routing ids + 6 + buffers; the worker pipes take at most 65536
REVOKED = "your key is no longer on this kernel's allow-list"
LOCK_REFRESH = 0.5  # at most one lock-file rewrite per this many seconds (it is only for ``ipytui list``)


class Supervisor(CrashHandling):
    """One kernel: public sockets, routing, the worker's lifecycle (crashes: CrashHandling)."""

    def __init__(self, info: ConnectionInfo, connection_file: Path, *, snapshots: bool = True,
                 owns_connection_file: bool = False, restore_from: str | None = None,
                 security: ServerSecurity | None = None, exit_on_restart: bool = False) -> None:
        self.info = info
        self.exit_on_restart = exit_on_restart
        self.security = security or ServerSecurity.for_kernel(info)
        self.connection_file = Path(connection_file)
        self.owns_connection_file = owns_connection_file
        self.kernel_id = crash.kernel_id_from(self.connection_file)
        self.codec = Codec(info.key, info.signature_scheme, username="kernel")
        self.snapshots = snapshots
        self.checkpoint_path = checkpoints_dir() / f"{self.kernel_id}.pickle"
        self.restore_from = restore_from
        self.journal_session: int | None = None
        self.restart_due: tuple[float, crash.CrashRecord, tuple[int, int]] | None = None
        self.crash_running: Pending | None = None
        self.last_ok_count = 0  # the last good, state-changing cell (its snapshot follows)
        self.crash_queued: list[Pending] = []
        self.worker = WorkerState()
        self.inflight: dict[str, Pending] = {}
        self.backlog: list[tuple[str, list[bytes], bool]] = []  # (channel, frames, is an execute)
        self.asking: bytes | None = None  # routing id of the client the open input() asked
        self.execution_count = 0
        self.crashes = crash.CrashHistory()
        self.crash_pending: crash.CrashRecord | None = None
        self.running = True
        self.started = time.time()
        self.restarts = 0
        self.last_crash = ""
        self.given_up = ""  # why no worker is restarted any more, or ""
        self.lock = new_lock(self.kernel_id, str(self.connection_file), str(self.checkpoint_path),
                             owns_connection_file=owns_connection_file)
        self.lock_written_at = 0.0  # monotonic time of the last lock-file rewrite
        self.lock_stale = False  # the lock file lags behind the clients/activity

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
    def spawn_worker(self, restore_from: str | None = None) -> None:
        """Start a fresh worker process (optionally loading a checkpoint)."""
        config = {
            "key": self.info.key, "signature_scheme": self.info.signature_scheme,
            "session": self.codec.session, "pipe": self.link.path, "supervisor_pid": os.getpid(),
            "checkpoint_path": str(self.checkpoint_path), "snapshots": self.snapshots,
            "restore_from": restore_from, "journal_session": self.journal_session,
        }
        env = dict(os.environ, IPYTUI_WORKER=json.dumps(config))
        proc = subprocess.Popen([sys.executable, "-m", "ipytui.kernel.worker"], env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)
        self._adopt(proc.pid)
        self._popen = proc  # keeps Popen from warning; we reap with waitpid ourselves

    def _adopt(self, pid: int) -> None:
        if self.worker.pidfd >= 0:
            os.close(self.worker.pidfd)
        self.worker = WorkerState(pid=pid, pidfd=os.pidfd_open(pid), spawned_at=time.monotonic())
        self.link.expect(pid)

    def promote_snapshot(self) -> bool:
        """Wake the latest snapshot as the new worker; False if there is none alive."""
        pid = self.worker.snapshot_pid
        if not pid:
            return False
        try:
            os.kill(pid, signal.SIGUSR1)
            self._adopt(pid)
        except (ProcessLookupError, OSError):
            return False
        return True

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

    def _revoked(self, channel: str, msg: Message) -> None:
        """A key taken off the allow-list while connected: answer its requests with why."""
        self.answer_error(channel, msg, "PermissionError", REVOKED)

    def answer_error(self, channel: str, msg: Message, ename: str, evalue: str,
                     traceback: list[str] | None = None) -> None:
        """Refuse a request ourselves. A cell also gets its error on IOPub, where
        clients (ours included) show a cell's failure, as for any failed cell."""
        if channel not in ("shell", "control") or not msg.msg_type.endswith("_request"):
            return
        error = {"ename": ename, "evalue": evalue, "traceback": traceback or [f"{ename}: {evalue}"]}
        pending = Pending(channel, msg, [])
        if msg.msg_type == "execute_request":
            self.publish("iopub", "status", {"execution_state": "busy"}, parent=msg)
            self.publish("iopub", "error", error, parent=msg)
        self._answer(pending, msg.msg_type.replace("_request", "_reply"),
                     {"status": "error", **error, "execution_count": self.execution_count},
                     busy=msg.msg_type != "execute_request")

    def do_kernel_info_request(self, channel: str, msg: Message) -> None:
        content = kernel_info_content()
        content["ipytui"] = self.status_info()
        self._answer(Pending(channel, msg, []), "kernel_info_reply", content)

    def do_interrupt_request(self, channel: str, msg: Message) -> None:
        self.interrupt_worker()
        self._answer(Pending(channel, msg, []), "interrupt_reply", {"status": "ok"})

    def do_shutdown_request(self, channel: str, msg: Message) -> None:
        restart = bool(msg.content.get("restart", False))
        self._answer(Pending(channel, msg, []), "shutdown_reply", {"status": "ok", "restart": restart})
        if restart and not self.exit_on_restart:
            self.restart_worker(restore=False)
        else:
            self.running = False

    def do_ipytui_restore_request(self, channel: str, msg: Message) -> None:
        """Restart and restore: a fresh worker back at the latest snapshot or checkpoint."""
        self._await_snapshot()
        method = self.restart_worker(restore=True)
        self._answer(Pending(channel, msg, []), "ipytui_restore_reply",
                     {"status": "ok", "method": method})

    def _await_snapshot(self, timeout: float = 1.0) -> None:
        """The worker forks its snapshot just after a good cell's reply: let its
        announcement arrive before restoring, so a restore right after a cell
        does not miss it."""
        deadline = time.monotonic() + timeout
        while (self.worker.ready and self.last_ok_count > self.worker.snapshot_count
               and not self.worker.notes and time.monotonic() < deadline):
            self.link.read_up(timeout_ms=20)

    def restart_worker(self, restore: bool) -> str:
        """Replace the worker on demand; returns how the state came back."""
        old = self.worker
        self._stop_worker(old)
        snapshot = self._newest_snapshot(old)  # its announcement may still be on the way
        if not restore and snapshot[0]:
            crash.kill(snapshot[0])
            crash.reap(snapshot[0])
            snapshot = (0, 0)
        for pending in list(self.inflight.values()):
            self._answer(pending, pending.msg.msg_type.replace("_request", "_reply"),
                         {"status": "aborted" if pending.msg.msg_type == "execute_request" else "error",
                          "ename": "KernelRestarted", "evalue": "the kernel was restarted",
                          "traceback": [], "execution_count": self.execution_count})
        self.inflight.clear()
        self.restarts += 1
        self.given_up, self.crashes = "", crash.CrashHistory()  # by hand: start counting again
        self.worker = WorkerState(snapshot_pid=snapshot[0], snapshot_count=snapshot[1])
        if restore and self.promote_snapshot():
            self.execution_count = max(self.execution_count, snapshot[1])
            return "snapshot"
        if not restore:
            self.execution_count = 0
        use_checkpoint = restore and self.checkpoint_path.exists()
        self.spawn_worker(str(self.checkpoint_path) if use_checkpoint else None)
        return "checkpoint" if use_checkpoint else "fresh"

    def _stop_worker(self, state: WorkerState) -> None:
        if not state.pid:
            return
        crash.kill(state.pid)
        crash.reap(state.pid)
        if state.pidfd >= 0:
            os.close(state.pidfd)
            state.pidfd = -1
        if self.link.pid == state.pid:
            self.link.expect(0)

    def interrupt_worker(self) -> None:
        if self.worker.pid and self.worker.ready:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker.pid, signal.SIGINT)

    def _on_pipe_broken(self, why: str) -> None:
        """The live worker's "up" pipe failed: end it, and the crash path restores the state."""
        if not self.worker.pid or not crash.is_running(self.worker.pid):
            return  # it died: the pidfd tells, and the pipe's end of stream is no news
        self.worker.notes.append(f"its pipe to the supervisor broke: {why}")
        crash.kill(self.worker.pid)

    def _on_worker_ready(self, event: dict[str, Any]) -> None:
        if event.get("pid") != self.worker.pid:
            log.warning("ignored a hello from stale worker %s", event.get("pid"))
            return
        self.worker.hello = event
        self._check_ready()

    def _check_ready(self) -> None:
        """Once the worker has said hello on all three pipes: route to it, flush the backlog."""
        worker = self.worker
        if worker.ready or worker.hello is None or not self.link.connected:
            return
        worker.ready = True
        event = worker.hello
        if event.get("promoted"):
            if self.crash_pending is not None:
                self.crash_pending.snapshot_count = int(event.get("execution_count", 0))
            self.link.send("exec", [b"sup", json.dumps(
                {"cmd": "resume", "execution_count": self.execution_count}).encode()])
        else:
            self.execution_count = max(self.execution_count, int(event.get("execution_count", 0)))
        if self.crash_pending is not None:
            self._finish_crash(event)
        self._flush_backlog()

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

    def do_history_request(self, channel: str, msg: Message) -> None:
        """History comes from the journal, so it works while a cell runs or after a crash."""
        why = history_content_error(msg.content)
        if why is None:
            reply = {"status": "ok", "history": self.journal.history_request(**msg.content)}
        else:
            reply = {"status": "error", "ename": "TypeError", "evalue": why, "traceback": [why]}
        self._answer(Pending(channel, msg, []), "history_reply", reply)

    def _on_sup(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "snapshot":
            old = self.worker.snapshot_pid
            self.worker.snapshot_pid = int(event["pid"])
            self.worker.snapshot_count = int(event.get("execution_count", 0))
            self.worker.notes = [f"thread {name!r} did not survive fork()"
                                 for name in event.get("lost_threads", [])]
            if old and old != self.worker.snapshot_pid:
                crash.kill(old)
        elif kind == "no_snapshot":
            self.worker.notes = [f"no snapshot: {event.get('why')}"]
        elif kind == "cell_done":
            self.crashes.cell_finished()
            if event.get("status") == "ok" and not event.get("inert"):
                self.last_ok_count = int(event.get("execution_count") or 0)
            self.execution_count = max(self.execution_count, int(event.get("execution_count") or 0))
        elif kind == "ready":
            self._on_worker_ready(event)
        elif kind == "cell_start":
            pending = self.inflight.get(event.get("msg_id", ""))
            if pending is not None:
                pending.started = True

    def status_info(self) -> dict[str, Any]:
        """Facts for kernel_info's ``ipytui`` key and the UI's status pane."""
        return {"pid": os.getpid(), "worker_pid": self.worker.pid, "started": self.started,
                "restarts": self.restarts, "last_crash": self.last_crash,
                "encrypted": self.info.encrypted, "kernel_id": self.kernel_id,
                "rss": crash.rss_bytes(os.getpid(), self.worker.pid, self.worker.snapshot_pid)}

    # -- main loop --------------------------------------------------------
    def run(self) -> None:
        """Serve until a shutdown_request (or SIGTERM)."""
        self.journal = Journal()
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
            timeout = 100 if self.crash_pending is not None else self._lock_due_ms()
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
            self.presence.flush()
            self._update_lock()
        self.shutdown()

    def _update_lock(self) -> None:
        """Keep the lock's client count and activity current, for ``ipytui list``.

        Rewritten at most every LOCK_REFRESH seconds: a fast client flips busy
        and idle a thousand times a second, and a file per flip would cost
        more than the cells themselves.
        """
        table = self.presence.table
        clients, activity = len(table.peers), "busy" if table.queue else "idle"
        self.lock_stale = (clients, activity) != (self.lock.clients, self.lock.activity)
        now = time.monotonic()
        if self.lock_stale and now - self.lock_written_at >= LOCK_REFRESH:
            self.lock.clients, self.lock.activity = clients, activity
            self.lock.write()
            self.lock_written_at, self.lock_stale = now, False

    def _lock_due_ms(self) -> int:
        """The poll timeout: 1 s, or sooner when a lock rewrite is waiting."""
        if not self.lock_stale:
            return 1000
        left = self.lock_written_at + LOCK_REFRESH - time.monotonic()
        return max(1, min(1000, int(left * 1000) + 1))

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
            crash.kill(self.worker.snapshot_pid)
        if self.worker.pid:
            self._stop_worker(self.worker)
        self.recorder.stop()
        if self.journal_session is not None:
            self.journal.end_session(self.journal_session, "shutdown")
        self.lock.remove()
        self.checkpoint_path.unlink(missing_ok=True)
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


_HISTORY_TYPES: dict[str, tuple[type, ...]] = {
    "output": (bool,), "raw": (bool,), "hist_access_type": (str,), "session": (int,),
    "start": (int,), "stop": (int, type(None)), "n": (int, type(None)), "pattern": (str,),
    "unique": (bool,),
}


def history_content_error(content: dict[str, Any]) -> str | None:
    """Why a history_request's content is unusable, or None if it is fine."""
    for key, value in content.items():
        types = _HISTORY_TYPES.get(key)
        if types is not None and not isinstance(value, types):
            return f"history_request content {key!r} must be {' or '.join(t.__name__ for t in types)}"
    if content.get("hist_access_type", "tail") not in ("tail", "range", "search"):
        return f"unknown hist_access_type {content.get('hist_access_type')!r}"
    return None
