"""The engines' state for the supervisor: which are up, busy or dead, and where
a UI can listen to their output.

A thread with an ipyparallel ``Client`` of its own (a Client is not safe to
share between threads, and the main thread's runs ``%px``). Engines coming and
going reach it as the Hub's registration notifications; whether one is busy
is one ``queue_status`` request to the Hub per ``POLL`` seconds. Each change
goes to the supervisor as a ``cluster`` event (with the processes a cluster
the kernel started runs in, so the supervisor can stop them with the kernel
even after this worker died).
"""

from __future__ import annotations

import threading
from typing import Any

from ipytui.kernel.worker.cluster import LINK, ClusterError, ClusterLink, wait_for_engines

POLL = 0.5  # seconds between queue_status requests to the Hub
START_TIMEOUT = 300.0  # seconds a started cluster's engines get to register (2 shared cores)


def engine_states(ids: list[int], queues: dict[Any, Any], seen: set[int]) -> list[dict[str, Any]]:
    """``[{"id": 0, "state": "busy"}, …]``: registered engines up or busy (tasks queued
    on them), engines that were seen and are gone dead."""
    engines = []
    for eid in sorted(set(ids) | seen):
        queue = queues.get(eid)
        busy = isinstance(queue, dict) and (queue.get("queue", 0) or queue.get("tasks", 0))
        state = "dead" if eid not in ids else "busy" if busy else "up"
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
        except Exception as exc:  # noqa: BLE001 - ipyparallel raises many kinds
            self.sup({"event": "cluster", "error": f"cannot watch the engines: {exc}"})
            return
        seen: set[int] = set()
        last: list[dict[str, Any]] | None = None
        try:
            while True:
                try:
                    ids = list(client.ids)  # handles the Hub's notifications first
                    queues = client.queue_status()
                except Exception:  # noqa: BLE001 - a Hub that went away: engines are gone
                    ids, queues = [], {}
                seen |= set(ids)
                engines = engine_states(ids, queues, seen)
                if engines != last:
                    self.sup({"event": "cluster", **facts, "engines": engines})
                    last = engines
                if stop.wait(POLL):
                    break
        finally:
            client.close()


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
    cells wait for it instead of finding no cluster."""

    def run() -> None:
        sup = _SINK[0]
        with worker.user_lock:
            try:
                if spec.startswith("new:"):
                    n = int(spec[4:])
                    LINK.start(n)
                    wait_for_engines(LINK.client, n, START_TIMEOUT)
                else:
                    LINK.connect(spec)
            except (ClusterError, ValueError) as exc:
                sup({"event": "cluster", "error": str(exc)})
                return
            except Exception as exc:  # noqa: BLE001 - never the worker's end
                sup({"event": "cluster", "error": f"cannot use the cluster {spec!r}: {exc}"})
                return
            watch()

    thread = threading.Thread(target=run, name="ipytui-cluster-start", daemon=True)
    thread.start()
    return thread
