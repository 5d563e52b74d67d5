"""The worker process: runs user code on its main thread, answers the rest meanwhile.

Started by the supervisor as ``python -m ipytui.kernel.worker.loop`` with its
settings in $IPYTUI_WORKER (JSON, so the key never shows in ``ps``). It
connects three pipes to the supervisor (kernel/pipe.py): "exec" brings the
executes and clients' comm messages its main thread runs, in the order the
shell channel received them, "quick" the requests its listener thread
answers meanwhile, and "up" takes everything out. It does not use ZeroMQ.
See docs/internals.md.
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import logging
import os
import queue
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ipytui.kernel.protocol.paths import LOG_ENV
from ipytui.kernel.protocol.wire import Codec, Message, WireError
from ipytui.kernel.worker import comms, handlers, ipython_compat, notebook_shell, protection_hooks
from ipytui.kernel.worker.display import Display, format_object
from ipytui.kernel.worker.execution import CellOutcome, DisplayHook, run_cell
from ipytui.kernel.worker.outputs import FdCapture, Flusher, OutStream
from ipytui.kernel.worker.pipe import connect_worker
from ipytui.kernel.worker.publisher import Publisher
from ipytui.kernel.worker.questions import SupervisorQuestions
from ipytui.kernel.worker.snapshots import Snapshots
from ipytui.kernel.worker.stdin import StdinBridge

log = logging.getLogger("ipytui.worker")

WARM_UP_QUIET_S = 0.5
"""The jedi warm-up takes a step only when no cell has run for this long (nor the worker
started): a cell then rarely shares the GIL with a step, nor its snapshot waits for one."""


class Worker(SupervisorQuestions):
    """One worker: sockets, threads, the user namespace and the execute loop."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.codec = Codec(config["key"], config.get("signature_scheme", "hmac-sha256"),
                           session=config.get("session"), username="kernel", check_replay=False)
        self.pipe_codec = Codec(b"", check_replay=False)  # the supervisor verified it already
        self.execution_count = 0
        self.executing = False
        self.cell_ended = 0.0  # time.monotonic() when the last cell ended (see start_warm_up)
        self.interrupt_deferred = False  # a SIGINT that came while a message was being written
        self.interrupt_early = False  # a SIGINT for a cell taken whose code has not started yet
        self.namespace = self._make_namespace()
        self.payloads: list[dict[str, Any]] = []
        self.shutting_down = False
        self.snapshots: Snapshots | None = None
        self.restored: dict[str, Any] | None = None
        self.shell: notebook_shell.ZMQInteractiveShell | None = None
        self.comms = comms.CommDispatcher(self)
        self._debugger: Any = None  # made on the first debug_request (debugger.Debugger)
        self.deferred: list[list[bytes]] = []  # exec-pipe messages kept for the main loop
        self._asks = 0
        self.tasks: Any = None  # engine_tasks.EngineTasks when serving as an ipyparallel engine
        # Held while user code runs on the main thread; a cluster being joined at start
        # (cluster_watch) and an engine's clear_request take it so they never run beside a cell.
        self.user_lock = threading.Lock()

    # -- setup ------------------------------------------------------------
    @staticmethod
    def _make_namespace() -> dict[str, Any]:
        main = types.ModuleType("__main__", "The user namespace of an ipytui kernel.")
        sys.modules["__main__"] = main
        ns = main.__dict__
        ns.update({"__builtins__": builtins, "In": [""], "Out": {}, "_": "", "__": "", "___": "",
                   "_i": "", "_ii": "", "_iii": ""})
        return ns

    @property
    def debugger(self) -> Any:
        """The debugger, made when a client first asks for it (its imports cost start-up)."""
        if self._debugger is None:
            from ipytui.kernel.worker.debugger import Debugger

            self._debugger = Debugger(self)
        return self._debugger

    def connect(self) -> None:
        """Open fresh pipes to the supervisor (also after a snapshot is promoted)."""
        pipes = connect_worker(self.config["pipe"])
        self.quick, self.exec_pipe, up = pipes["quick"], pipes["exec"], pipes["up"]
        up.after_write = self._raise_deferred_interrupt
        if hasattr(self, "publisher"):
            self.publisher.socket = up
            self.publisher.lock = threading.Lock()
            self.publisher.owner_pid = os.getpid()
        else:
            self.publisher = Publisher(up, self.codec)

    def start_listener(self, hello: dict[str, Any]) -> None:
        """Start the listener; its first act is the hello that makes the supervisor route to us."""
        self.listener = threading.Thread(target=self._listen, args=(hello,), name="ipytui-listener",
                                         daemon=True)
        self.listener.start()

    def install_io(self) -> None:
        """Replace stdout/stderr/input/display so user code talks to the clients."""
        self.flusher = Flusher()
        self.flusher.start()
        self.stdout = OutStream("stdout", self.publisher, self.flusher)
        self.stderr = OutStream("stderr", self.publisher, self.flusher)
        if self.config.get("capture_fd", True):
            self.fdcapture: FdCapture | None = FdCapture({1: self.stdout, 2: self.stderr})
            self.fdcapture.start()
            log_fd = self.fdcapture.original[2]
        else:
            self.fdcapture = None
            log_fd = os.dup(2)
        logging.basicConfig(stream=_log_stream(log_fd), level=logging.INFO,
                            format="%(asctime)s ipytui-worker[%(process)d] %(message)s", force=True)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.display = Display(self.publisher)
        self.display.before_output = self.flush_streams
        self.stdin = StdinBridge(self.publisher)
        self.stdin.before_prompt = self.flush_streams
        builtins.input = self.stdin.input
        getpass.getpass = self.stdin.getpass
        builtins.display = self.display.display  # type: ignore[attr-defined]
        builtins.clear_output = self.display.clear_output  # type: ignore[attr-defined]
        self.displayhook = DisplayHook(self.namespace, self._publish_result)
        signal.signal(signal.SIGINT, self._on_sigint)
        handlers.install_shell(self)
        self.install_ecosystem()
        self.snapshots = Snapshots(self.config)
        self.publisher.sup({"event": "protection", **self.snapshots.protection.info()})

    def install_ecosystem(self) -> None:
        """get_ipython(), comms, IPython's display hooks, matplotlib's default backend."""
        self.shell = notebook_shell.install(self)
        ipython_compat.install()
        comms.install(self.publisher)

    def promote(self, lost_threads: list[str], after_msg_id: str = "") -> None:
        """In a snapshot child that was chosen: become the worker on fresh pipes."""
        for pipe in (self.quick, self.exec_pipe, self.publisher.socket):
            pipe.abandon()  # the dead worker's connections, inherited through fork()
        die_with_parent()
        self.stdin.replies = queue.Queue()
        self.connect()
        self.flusher = Flusher()
        self.flusher.start()
        for stream in (self.stdout, self.stderr):
            stream.reset(self.flusher)
        if self.fdcapture is not None:
            self.fdcapture.restart()
        closed = comms.close_all_after_restore()
        if closed:
            log.info("closed %d comms after a restore", closed)
        self.start_listener({"event": "ready", "pid": os.getpid(), "promoted": True,
                             "execution_count": self.execution_count,
                             "names": handlers.user_names(self.namespace),
                             "lost_threads": lost_threads, "after_msg_id": after_msg_id})
        self.start_warm_up()  # returns at once when the parent had warmed jedi already

    def start_warm_up(self) -> None:
        """Warm jedi up in the background now, so the first Tab is answered fast and right.

        It costs ~40 MiB and, with a cold cache, seconds of CPU; it takes its
        steps only while no cell runs (see `jedi_runner.warm_up`). An engine
        skips it: no one presses Tab there, and its engines start side by side.
        """
        if self.tasks is not None:
            return
        # The start counts as a cell's end: the first cells, sent as soon as the
        # kernel is ready, then never meet a warm-up step (nor do their snapshots).
        self.cell_ended = time.monotonic()
        threading.Thread(target=_warm_up, args=(self._quiet,), name="ipytui-warmup",
                         daemon=True).start()

    def _quiet(self) -> bool:
        """No cell runs, and none ended just now (cells sent in a burst come back to back)."""
        return not self.executing and time.monotonic() - self.cell_ended > WARM_UP_QUIET_S

    # -- threads ----------------------------------------------------------
    def _listen(self, hello: dict[str, Any]) -> None:
        """Listener thread: answer everything but executes, even while a cell runs."""
        quick = self.quick
        self.publisher.sup(hello)  # the supervisor routes to us from now on
        while True:
            try:
                frames = quick.recv_multipart()
            except OSError:
                return
            if frames is None:
                return
            channel = frames[0].decode()
            try:
                msg = self.pipe_codec.deserialize(frames[1:])
            except WireError as exc:
                log.warning("dropped a message from the supervisor: %s", exc)
                continue
            try:
                self._dispatch(channel, msg)
            except Exception:  # noqa: BLE001 - the listener must keep serving
                log.exception("handler for %s failed", msg.msg_type)

    def _dispatch(self, channel: str, msg: Message) -> None:
        if channel == "stdin":
            if msg.msg_type == "input_reply":
                self.stdin.replies.put(msg)
            return
        handler = handlers.QUICK.get(msg.msg_type)
        if msg.msg_type not in ("is_complete_request", "comm_info_request"):  # may run getattr
            protection_hooks.state_touched(self)
        self.publisher.status("busy", msg)
        try:
            if handler is None:
                handlers.unknown_request(self, channel, msg)
            else:
                handler(self, channel, msg)
        finally:
            self.publisher.status("idle", msg)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT interrupts a running cell and is harmless while idle.

        Never in the middle of a message to the supervisor: then it waits
        until the message is whole (``_raise_deferred_interrupt``).
        """
        if not self.executing:
            # Clients see the cell start (execute_input) a moment before its code
            # runs: an interrupt in between is for that cell, not to be lost.
            self.interrupt_early = self.publisher.parent is not None
            return
        if self.publisher.socket.writing:
            self.interrupt_deferred = True
            return
        raise KeyboardInterrupt

    def _raise_deferred_interrupt(self) -> None:
        """After the main thread's write: the SIGINT that came during it, if any."""
        if self.interrupt_deferred:
            self.interrupt_deferred = False
            if self.executing:
                raise KeyboardInterrupt

    # -- main thread ------------------------------------------------------
    def flush_streams(self) -> None:
        if self.fdcapture is not None:
            self.fdcapture.sync()
        self.stdout.flush()
        self.stderr.flush()

    def discard_streams(self) -> None:
        """An interrupted cell: its buffered output is dropped, not sent (Ctrl+C
        should stop the flood now, not after the buffers have drained)."""
        self.stdout.discard()
        self.stderr.discard()

    def _publish_result(self, value: Any, count: int) -> None:
        self.flush_streams()
        data, metadata = format_object(value)
        self.publisher.send("iopub", "execute_result",
                            {"execution_count": count, "data": data, "metadata": metadata})

    def serve(self) -> None:
        """Main loop: run executes and comm messages as they arrive, until the supervisor
        is gone."""
        self.start_listener({"event": "ready", "pid": os.getpid(), "promoted": False,
                             "execution_count": self.execution_count,
                             "names": handlers.user_names(self.namespace),
                             "restored": self.restored})
        self.start_warm_up()
        if self.tasks is not None:  # an MPI engine's start; a restore point promoted
            self.tasks.started(self)  # later returns from here and serves on
        while True:
            try:
                frames = self._next_execute()
            except KeyboardInterrupt:
                continue
            except OSError:
                break
            if frames is None:
                break
            msg = self._exec_message(frames)
            if msg is None:
                continue
            with self.user_lock:  # a cluster being joined (cluster_watch) holds it first
                if msg.msg_type in comms.INCOMING:
                    self.comms.handle(msg)
                elif self.tasks is not None:  # an ipyparallel engine: executes and its tasks
                    self.tasks.run(self, msg)
                elif msg.msg_type == "execute_request":
                    handlers.execute(self, msg)
                else:  # an apply_request sent to a kernel that is no engine
                    handlers.unknown_request(self, "shell", msg)

    def journal(self) -> Any:
        """This process's journal handle (history for %history), opened on first use."""
        if getattr(self, "_journal_pid", None) != os.getpid():
            from ipytui.kernel.protocol.journal import Journal

            self._journal = Journal()
            self._journal.session_id = self.config.get("journal_session")
            self._journal_pid = os.getpid()
        return self._journal

    def restore_checkpoint(self) -> None:
        """Load the checkpoint the supervisor named, if any (recovery after a full stop)."""
        path = self.config.get("restore_from")
        if not path:
            return
        from ipytui.kernel.worker import checkpoint

        try:
            state = checkpoint.read(path)
            names, lost = checkpoint.restore(state, self.namespace)
        except Exception as exc:  # noqa: BLE001 - a bad checkpoint gives a clean kernel
            self.restored = {"names": [], "lost": {}, "error": f"{type(exc).__name__}: {exc}"}
            return
        self.execution_count = int(state.get("execution_count", 0))
        self.restored = {"names": names, "lost": lost, "time": state.get("time")}

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """SIGINT raises KeyboardInterrupt in this block: user code run outside a cell
        (a comm callback), as in a cell. Main thread only."""
        self.executing = True
        try:
            if self.interrupt_early:
                self.interrupt_early = False
                raise KeyboardInterrupt
            yield
        finally:
            self.executing = False

    def run_user_cell(self, code: str, count: int, raw: str | None = None) -> Any:
        """Run a cell with SIGINT armed; used by the execute handler.

        A second Ctrl+C can land while the first one is being turned into the
        cell's error; it must end the cell too, never escape into the worker
        (an uncaught KeyboardInterrupt would end the process).
        """
        # While debugging, the cell runs from a file named by its hash (breakpoints are by path).
        debugger = self._debugger
        filename = debugger.cell_filename(raw) if debugger is not None and raw is not None else None
        try:
            self.executing = True
            if self.interrupt_early:
                self.interrupt_early = False
                raise KeyboardInterrupt
            return run_cell(code, count, self.namespace, self.displayhook, filename)
        except KeyboardInterrupt:
            self.executing = False
            return CellOutcome(status="error", ename="KeyboardInterrupt", evalue="",
                               traceback=["\x1b[0;31mKeyboardInterrupt\x1b[0m"])
        finally:
            self.executing = False
            self.cell_ended = time.monotonic()


def _warm_up(idle: Callable[[], bool]) -> None:
    """Pay jedi's first-call cost now, not on the user's first Tab (imported here: jedi is
    not needed to start a worker)."""
    from ipytui.kernel.worker.jedi_runner import warm_up

    warm_up(idle)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the supervisor dies (no orphan workers)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(1)


def _log_stream(stderr_fd: int) -> TextIO:
    """The supervisor's log file (its choice, in the environment), else the real stderr."""
    log_file = os.environ.get(LOG_ENV)
    if log_file:
        try:
            return open(log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker
        except OSError:
            pass
    return os.fdopen(stderr_fd, "w", buffering=1)
