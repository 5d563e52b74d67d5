"""The worker's lifecycle as the supervisor sees it: start one, adopt a promoted
snapshot, replace it on demand, interrupt it, and the bookkeeping events it
sends (ready, snapshot taken, cell done).

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (its state is
the supervisor's); what happens when a worker dies is in ``crash_handling``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol import procs
from ipytui.kernel.protocol.spill_files import spill_path
from ipytui.kernel.supervisor import crash_report
from ipytui.kernel.supervisor.cluster_owner import ClusterOwner
from ipytui.kernel.supervisor.disk_health import DiskHealth
from ipytui.kernel.supervisor.inflight import Pending, WorkerState
from ipytui.kernel.supervisor.spill_hold import close_later, hold_spill

log = logging.getLogger("ipytui.supervisor")


class WorkerLifecycle:
    """Starting, replacing and hearing from the worker (see the module docstring)."""

    info: Any
    worker: WorkerState
    inflight: dict[str, Pending]
    link: Any
    private_dir: str
    snapshots: bool
    checkpoint_path: Path
    crash_pending: crash_report.CrashRecord | None
    crashes: crash_report.CrashHistory
    execution_count: int
    restored_after: int
    user_names: int
    restore_from: str | None
    recovery_told: bool
    announce: Callable[..., dict[str, Any]]
    last_ok_count: int
    restarts: int
    given_up: str
    journal_session: int | None
    disk: DiskHealth
    checkpointed: dict[str, Any] | None
    settings: Any
    chain: Any
    changed_cells: list[int]
    protection: dict[str, Any]
    cluster: ClusterOwner | None = None  # set by main for ``--cluster``, else made on first news
    undo_plan: Any
    timeline_due: bool
    _finish_undo: Callable[..., None]
    _discard: Callable[[list[int]], None]
    _on_snapshot: Callable[[dict[str, Any]], None]
    _on_cell_changed: Callable[[int, str], None]
    _on_protection: Callable[[dict[str, Any]], None]
    _on_undo: Callable[[dict[str, Any]], None]
    _on_timeline: Callable[[dict[str, Any]], None]
    _on_spill: Callable[[dict[str, Any]], None]
    _answer: Callable[..., None]
    _finish_crash: Callable[..., None]
    _flush_backlog: Callable[[], None]
    _newest_snapshot: Callable[[WorkerState], tuple[int, int]]
    _debug_session_ended: Callable[[], None]

    def spawn_worker(self, restore_from: str | None = None) -> None:
        """Start a fresh worker process (optionally loading a checkpoint)."""
        config = {
            "key": self.info.key,
            "signature_scheme": self.info.signature_scheme,
            "session": self.codec.session,
            "pipe": self.link.path,
            "supervisor_pid": os.getpid(),
            "checkpoint_path": str(self.checkpoint_path),
            "snapshots": self.snapshots,
            "restore_from": restore_from,
            "journal_session": self.journal_session,
            **self.settings.as_config(),
            **(self.cluster.worker_config() if self.cluster is not None else {}),
        }
        env = dict(os.environ, IPYTUI_WORKER=json.dumps(config))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ipytui.kernel.worker"],
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        self._adopt(proc.pid)
        self._popen = proc  # keeps Popen from warning; we reap with waitpid ourselves

    def _adopt(self, pid: int, spill_fd: int = -1) -> None:
        if self.worker.pidfd >= 0:
            os.close(self.worker.pidfd)
        close_later(self.worker.spill_fd)
        self.worker = WorkerState(pid=pid, pidfd=os.pidfd_open(pid), spawned_at=time.monotonic(),
                                  spill_fd=spill_fd)
        self.link.expect(pid)

    def promote_snapshot(self) -> bool:
        """Wake the latest snapshot as the new worker; False if there is none alive."""
        pid = self.worker.snapshot_pid
        if not pid:
            return False
        point = self.chain.take(pid)
        spill_fd = hold_spill(spill_path(self.checkpoint_path, pid))  # before the point unlinks it
        try:
            os.kill(pid, signal.SIGUSR1)
            self._adopt(pid, spill_fd)
        except (ProcessLookupError, OSError):
            close_later(spill_fd)
            return False
        self.worker.replay = list(point.replay) if point is not None else []
        return True

    def restart_worker(self, restore: bool) -> str:
        """Replace the worker on demand; returns how the state came back."""
        old = self.worker
        self._stop_worker(old)
        if old.debugging:
            self._debug_session_ended()
        snapshot = self._newest_snapshot(old)  # its announcement may still be on the way
        if not restore and snapshot[0]:
            procs.kill_snapshot(snapshot[0])
            procs.reap(snapshot[0])
            snapshot = (0, 0)
        if not restore:
            self._discard(self.chain.drop_all("the kernel was restarted without restoring"))
            self.changed_cells = []
        for pending in list(self.inflight.values()):
            self._answer(
                pending,
                pending.msg.msg_type.replace("_request", "_reply"),
                {
                    "status": "aborted" if pending.msg.msg_type == "execute_request" else "error",
                    "ename": "KernelRestarted",
                    "evalue": "the kernel was restarted",
                    "traceback": [],
                    "execution_count": self.execution_count,
                },
            )
        self.inflight.clear()
        self.restarts += 1
        self.given_up, self.crashes = (
            "",
            crash_report.CrashHistory(),
        )  # by hand: start counting again
        close_later(self.worker.spill_fd)  # that worker is gone
        self.worker = WorkerState(snapshot_pid=snapshot[0], snapshot_count=snapshot[1])
        self.restored_after = snapshot[1] if restore else 0
        if restore and self.promote_snapshot():
            self.execution_count = max(self.execution_count, snapshot[1])
            return "snapshot"
        if not restore:
            self.execution_count = self.user_names = 0
            self.disk.forget_order("checkpoint")
        use_checkpoint = restore and self.checkpoint_path.exists()
        self.spawn_worker(str(self.checkpoint_path) if use_checkpoint else None)
        return "checkpoint" if use_checkpoint else "fresh"

    def _stop_worker(self, state: WorkerState) -> None:
        if not state.pid:
            return
        procs.signal_exact(state.pidfd, state.pid)
        procs.reap(state.pid)
        if state.pidfd >= 0:
            os.close(state.pidfd)
            state.pidfd = -1
        if self.link.pid == state.pid:
            self.link.expect(0)

    def interrupt_worker(self) -> None:
        if self.worker.pid and self.worker.ready:
            procs.signal_exact(self.worker.pidfd, self.worker.pid, signal.SIGINT)

    def _on_pipe_broken(self, why: str) -> None:
        """The live worker's "up" pipe failed: end it, and the crash path restores the state."""
        if not self.worker.pid or not procs.is_running(self.worker.pid):
            return  # it died: the pidfd tells, and the pipe's end of stream is no news
        self.worker.notes.append(f"its pipe to the supervisor broke: {why}")
        procs.signal_exact(self.worker.pidfd, self.worker.pid)

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
        self.timeline_due = True  # a crash-restore or restart changed the points
        event = worker.hello
        self.user_names = len(event.get("names") or [])
        if event.get("promoted"):
            # The point's state, then the cells logged after it, which it replays first.
            replay = [[e.count, e.code, e.user] for e in worker.replay]
            count = replay[-1][0] if replay else int(event.get("execution_count", 0))
            if self.crash_pending is not None:
                self.crash_pending.snapshot_count = count
            self.link.send(
                "exec",
                [
                    b"sup",
                    json.dumps(
                        {
                            "cmd": "resume",
                            "execution_count": self.execution_count,
                            "protection": self.protection.get("setting"),
                            "replay": replay,
                        }
                    ).encode(),
                ],
            )
            self.changed_cells = [c for c in self.changed_cells if c <= count]
        else:
            self.execution_count = max(self.execution_count, int(event.get("execution_count", 0)))
            self._tell_recovery(event)
        if self.crash_pending is not None:
            self._finish_crash(event)
        if self.undo_plan is not None:
            self._finish_undo(event)
        self._flush_backlog()

    def _on_cluster(self, event: dict[str, Any]) -> None:
        """The engines' state changed: every client is told (membership changes journaled)."""
        if self.cluster is None:
            self.cluster = ClusterOwner()
        told = self.cluster.on_event(event)
        if told is not None:
            details, journal = told
            self.announce("cluster", journal=journal, **details)

    def _tell_recovery(self, hello: dict[str, Any]) -> None:
        """The first worker of a kernel started from a checkpoint (``ipytui recover``):
        say once what came back, so a UI opening on it is not blank."""
        if not self.restore_from or self.recovery_told:
            return
        self.recovery_told = True
        restored = hello.get("restored") if isinstance(hello.get("restored"), dict) else {}
        self.announce(
            "recovered",
            method="checkpoint",
            after_cell=self.execution_count,
            names=list(hello.get("names") or []),
            lost=dict(restored.get("lost") or {}),
        )

    def _on_sup(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "snapshot":
            self._on_snapshot(event)
        elif kind in ("protection", "undo", "timeline", "spill", "logged", "replay_failed"):
            {
                "logged": self._on_logged,
                "replay_failed": self._on_replay_failed,
                "protection": self._on_protection,
                "undo": self._on_undo,
                "timeline": self._on_timeline,
                "spill": self._on_spill,
            }[kind](event)
        elif kind == "checkpoint":
            seq = event.get("execution_count")
            seq = seq if isinstance(seq, int) else None
            if event.get("ok"):
                self.disk.ok("checkpoint", seq)
            else:
                self.disk.failed("checkpoint", str(event.get("why") or "the write failed"), seq)
        elif kind == "checkpointed":
            self.checkpointed = event
        elif kind == "no_snapshot":
            self.worker.notes = [f"no snapshot: {event.get('why')}"]
        elif kind == "cell_done":
            self.worker.cell_done_due, self.worker.cell_done_for = (
                False,
                str(event.get("msg_id") or ""),
            )
            self.crashes.cell_finished()
            if isinstance(event.get("user_names"), int):
                self.user_names = event["user_names"]
            if isinstance(event.get("protection"), dict):
                self.protection = event["protection"]
                last = self.protection.get("last_cell")
                self.chain.note_faults(int(last.get("faults") or 0) if isinstance(last, dict) else 0)
            if event.get("changed") and event.get("execution_count"):
                self._on_cell_changed(int(event["execution_count"]), str(event.get("msg_id") or ""))
            if event.get("status") == "ok" and not event.get("inert"):
                self.last_ok_count = int(event.get("execution_count") or 0)
            self.execution_count = max(self.execution_count, int(event.get("execution_count") or 0))
        elif kind == "ready":
            self._on_worker_ready(event)
        elif kind == "cluster":
            self._on_cluster(event)
        elif kind == "debugger":
            self.worker.debugging = bool(event.get("on"))
        elif kind == "cell_start":
            pending = self.inflight.get(event.get("msg_id", ""))
            if pending is not None:
                pending.started = True

