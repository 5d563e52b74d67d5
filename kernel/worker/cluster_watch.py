"""The engines' state for the supervisor: which are up, busy or dead, and where
a UI can listen to their output.

A thread with an ipyparallel ``Client`` of its own (a Client is not safe to
share between threads, and the main thread's runs ``%px``). Engines coming and
going reach it as the Hub's registration notifications; whether one is busy,
as the engine's own ``status`` messages on the Hub's IOPub (topic
``engine.<id>.status``, filtered by the Hub). Nothing is polled but the
Client's notification socket, locally, every ``POLL`` seconds. Each change
goes to the supervisor as a ``cluster`` event (with the processes a cluster
the kernel started runs in, so the supervisor can stop them with the kernel
even after this worker died).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ipytui.kernel.protocol.wire import Codec, WireError
from ipytui.kernel.worker.cluster import LINK, ClusterError, ClusterLink, wait_for_engines

POLL = 0.5  # seconds between looks at the Client's registration notifications
BUSY_AFTER = 0.3  # seconds an engine must be busy before it is told: short tasks (a quick
# %px) would otherwise send every client two events each, for a flicker nobody can read
START_TIMEOUT = 300.0  # seconds a started cluster's engines get to register (2 shared cores)


def engine_states(ids: list[int], busy: set[int], seen: set[int]) -> list[dict[str, Any]]:
    """``[{"id": 0, "state": "busy"}, …]``: registered engines up or busy (running a
    task), engines that were seen and are gone dead."""
    engines = []
    for eid in sorted(set(ids) | seen):
        state = "dead" if eid not in ids else "busy" if eid in busy else "up"
        engines.append({"id": eid, "state": state})
    return engines


def link_facts(link: ClusterLink) -> dict[str, Any]:
    """Where the cluster is (its client file, the Hub's IOPub) and, for one the
    kernel started, the process groups it runs in."""
    client = link.require()
    config = client._config  # the connection info as the Client resolved it (urls, key)
    owned: list[int] = []
    if link.cluster is not None:
        launchers = [link.cluster.controller, *link.cluster.engines.values()]
        for launcher in launchers:
            for one in [launcher, *getattr(launcher, "launchers", {}).values()]:
                pid = getattr(one, "pid", None)
                if isinstance(pid, int) and pid > 0:
                    owned.append(pid)
    key = client.session.key
    return {
        "connection_file": link.connection_file,
        "owned": link.cluster is not None,
        "owned_pids": sorted(set(owned)),
        "cluster_file": getattr(link.cluster, "cluster_file", "") if link.cluster else "",
        "iopub": {
            "url": config.get("iopub"),
            "key": key.decode("ascii") if isinstance(key, bytes) else str(key),
            "signature_scheme": client.session.signature_scheme,
            "curve_serverkey": config.get("curve_serverkey"),
        },
    }


class ClusterWatch:
    """Tells the supervisor the engines' state while a cluster is in use."""

    def __init__(self, sup: Any) -> None:
        self.sup = sup  # Publisher.sup: thread-safe, a no-op in a forked child
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, facts: dict[str, Any]) -> None:
        """Watch the cluster described by ``facts`` (see ``link_facts``)."""
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(facts, self._stop), name="ipytui-cluster-watch", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, left: bool = False) -> None:
        """Stop watching; ``left``: the kernel left the cluster, say so."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        if left:
            self.sup(
                {
                    "event": "cluster",
                    "engines": [],
                    "connection_file": "",
                    "owned": False,
                    "owned_pids": [],
                }
            )

    def _run(self, facts: dict[str, Any], stop: threading.Event) -> None:
        import ipyparallel as ipp

        try:
            client = ipp.Client(facts["connection_file"])
            statuses = _status_socket(client, facts["iopub"])
        except Exception as exc:  # noqa: BLE001 - ipyparallel raises many kinds
            self.sup({"event": "cluster", "error": f"cannot watch the engines: {exc}"})
            return
        codec = Codec(facts["iopub"]["key"], facts["iopub"]["signature_scheme"], check_replay=False)
        try:
            self._watch(client, statuses, codec, facts, stop)
        finally:
            statuses.close(linger=0)
            client.close()

    def _watch(
        self, client: Any, statuses: Any, codec: Codec, facts: dict[str, Any], stop: threading.Event
    ) -> None:
        """Registrations from the Client's notifications, busy and idle from the engines'
        own status messages: nothing is asked of the Hub but once at the start."""
        seen: set[int] = set()
        try:
            queues = client.queue_status()  # who is busy before the first status message
        except Exception:  # noqa: BLE001
            queues = {}
        shown_at = time.monotonic() - BUSY_AFTER
        busy = {
            eid: shown_at for eid, q in queues.items() if isinstance(q, dict) and q.get("queue")
        }
        last: list[dict[str, Any]] | None = None
        while not stop.is_set():
            try:
                ids = list(client.ids)  # handles the Hub's notifications first
            except Exception:  # noqa: BLE001 - a Hub that went away: engines are gone
                ids = []
            for eid in set(ids) - seen:
                statuses.subscribe(f"engine.{eid}.status".encode())
            seen |= set(ids)
            now = time.monotonic()
            long_busy = {eid for eid, since in busy.items() if now - since >= BUSY_AFTER}
            engines = engine_states(ids, long_busy, seen)
            if engines != last:
                self.sup({"event": "cluster", **facts, "engines": engines})
                last = engines
            due = [
                BUSY_AFTER - (now - since) for since in busy.values() if now - since < BUSY_AFTER
            ]
            if statuses.poll(min([POLL, *due]) * 1000):
                _read_statuses(statuses, codec, busy)


def _status_socket(client: Any, iopub: dict[str, Any]) -> Any:
    """A SUB on the Hub's IOPub, in the Client's context (this thread's), encrypted
    as the Client is."""
    import zmq

    sock = client._context.socket(zmq.SUB)
    sock.linger = 0
    if iopub.get("curve_serverkey"):
        sock.curve_serverkey = str(iopub["curve_serverkey"]).encode("ascii")
        sock.curve_publickey, sock.curve_secretkey = client.curve_publickey, client.curve_secretkey
    sock.connect(iopub["url"])
    return sock


def _read_statuses(sock: Any, codec: Codec, busy: dict[int, float]) -> None:
    """Every status message queued: ``engine.<id>.status`` busy (since when) or idle."""
    import zmq

    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            msg = codec.deserialize(frames)
            eid = int(msg.identities[0].split(b".")[1])
        except (WireError, IndexError, ValueError):
            continue
        state = msg.content.get("execution_state")
        if state == "busy":
            busy.setdefault(eid, time.monotonic())
        elif state == "idle":
            busy.pop(eid, None)


_SINK: list[Any] = []  # the worker's Publisher.sup, once installed
WATCH: ClusterWatch | None = None


def install(worker: Any) -> None:
    """Let ``%cluster`` and ``--cluster`` tell this worker's supervisor (the publisher
    is looked up at each event: a promoted snapshot gets a new one)."""
    _SINK[:] = [lambda event: worker.publisher.sup(event)]
    spec = worker.config.get("cluster")
    if spec and not LINK.connected:
        start_from_spec(worker, str(spec))


def watch(link: ClusterLink = LINK) -> None:
    """Start telling the supervisor about ``link``'s engines (after start or connect)."""
    global WATCH
    if not _SINK:
        return  # not in a worker (a unit test of the magics)
    if WATCH is None:
        WATCH = ClusterWatch(_SINK[0])
    WATCH.start(link_facts(link))


def ensure(link: ClusterLink = LINK) -> None:
    """Watch again in a worker restored from a snapshot: a fork keeps no threads."""
    if WATCH is not None and link.connected and not WATCH.alive:
        link.require()  # a fresh Client first, if this process is a fork
        WATCH.start(link_facts(link))


def unwatch() -> None:
    """The kernel left its cluster."""
    if WATCH is not None:
        WATCH.stop(left=True)


def start_from_spec(worker: Any, spec: str) -> threading.Thread:
    """``new:N``, a client connection file or a profile (``ipytui --cluster``):
    start or join the cluster in a thread, holding the user lock so the first
    cells wait for it instead of finding no cluster. The lock is taken here,
    before the worker serves, and released by the thread (a plain Lock allows
    it): a cell can never hold it while it waits for the join (``wait_joined``)."""
    worker.user_lock.acquire()

    def run() -> None:
        sup = _SINK[0]
        try:
            if spec.startswith("new:"):
                n = int(spec[4:])
                LINK.start(n)
                wait_for_engines(LINK.client, n, START_TIMEOUT)
            else:
                LINK.connect(spec)
            watch()
        except (ClusterError, ValueError) as exc:
            sup({"event": "cluster", "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - never the worker's end
            sup({"event": "cluster", "error": f"cannot use the cluster {spec!r}: {exc}"})
        finally:
            worker.user_lock.release()

    thread = threading.Thread(target=run, name="ipytui-cluster-start", daemon=True)
    LINK.joiner = thread
    try:
        thread.start()
    except RuntimeError:
        worker.user_lock.release()
        raise
    return thread
