"""The worker's link to an ipyparallel cluster: connect, run code on engines,
and stream each engine's output into the cell as it arrives.

ipyparallel is imported only when a cluster is used. Engine output is
labelled the way ipyparallel labels it (``[stdout:0]``), so every peer of the
shared stream can tell the engines apart.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLL = 0.05  # seconds between looks at the engines' output while a task runs
INTERRUPT_GRACE = 5.0  # seconds interrupted engines get to end their task


class ClusterError(Exception):
    """A cluster request that cannot be carried out; the text says why."""


class EngineFailure(ClusterError):
    """Code raised on one or more engines (their tracebacks are already shown)."""


@dataclass
class Engines:
    """The engines a ``%px`` reaches and how it waits for them."""

    targets: Any = "all"  # "all", an int or a list of ints
    block: bool = True
    verbose: bool = False


@dataclass
class ClusterLink:
    """The kernel's connection to one cluster (at most one at a time)."""

    client: Any = None
    cluster: Any = None  # an ipp.Cluster this kernel started, stopped with it
    engines: Engines = field(default_factory=Engines)
    last: Any = None  # the last AsyncResult, for %pxresult
    autopx: bool = False
    connection_file: str = ""  # the cluster's ipcontroller-…client.json
    pid: int = 0  # the process the client was made in (a restored snapshot is a fork)
    joiner: threading.Thread | None = None  # the start-up join of ``--cluster``, if any

    def wait_joined(self) -> None:
        """Wait for the start-up join (``--cluster``) to end, so a first cell finds the
        cluster instead of none; the joining thread itself does not wait."""
        joiner = self.joiner
        if joiner is not None and joiner is not threading.current_thread():
            joiner.join()  # interruptible on the main thread: Ctrl+C ends the wait

    @property
    def connected(self) -> bool:
        return self.client is not None

    def connect(self, where: str) -> str:
        """Connect to a running cluster: a client connection file or a profile name."""
        import ipyparallel as ipp

        self.wait_joined()
        self.close()
        path = Path(where).expanduser()
        try:
            if path.suffix == ".json" or path.exists():
                if not path.exists():
                    raise ClusterError(f"no connection file {where!r}")
                self.client = ipp.Client(str(path))
                self.connection_file = str(path.resolve())
                self.pid = os.getpid()
            else:
                self.client = ipp.Client(profile=where or "default")
                security = Path(self.client._profile_dir.security_dir)
                self.connection_file = str(security / "ipcontroller-client.json")
                self.pid = os.getpid()
        except ClusterError:
            raise
        except Exception as exc:  # noqa: BLE001 - ipyparallel raises many kinds
            raise ClusterError(f"cannot connect to the cluster {where!r}: {exc}") from None
        return self.describe()

    def start(self, n: int) -> str:
        """Start a local cluster of ``n`` engines owned by this kernel."""
        import ipyparallel as ipp

        self.wait_joined()
        self.close()
        from IPython.core.profiledir import ProfileDir
        from IPython.paths import get_ipython_dir
        from traitlets.config import Configurable

        # ipyparallel would take its parent and profile from get_ipython(), and ours is
        # no traitlets object with a profile: name both.
        profile = ProfileDir.create_profile_dir_by_name(get_ipython_dir(), "default")
        cluster = ipp.Cluster(
            n=n, log_level=40, parent=Configurable(), profile_dir=profile.location
        )
        try:
            self.client = cluster.start_and_connect_sync(activate=False)
        except Exception as exc:  # noqa: BLE001
            raise ClusterError(f"cannot start a cluster of {n} engines: {exc}") from None
        self.cluster, self.pid = cluster, os.getpid()
        self.connection_file = str(
            Path(cluster.profile_dir, "security", f"ipcontroller-{cluster.cluster_id}-client.json")
        )
        return self.describe()

    def close(self) -> None:
        """Leave the cluster; one this kernel started is stopped."""
        client, cluster, self.client, self.cluster, self.last = (
            self.client,
            self.cluster,
            None,
            None,
            None,
        )
        self.connection_file = ""
        self.autopx = False
        if client is not None and self.pid != os.getpid():
            _FORKED.append(client)  # a fork's copy: not ours to close
            client = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.stop_cluster_sync()

    def describe(self) -> str:
        """One line per engine: id and state, for ``%cluster``."""
        client = self.require()
        ids = list(client.ids)
        try:
            status = client.queue_status(verbose=False)
        except Exception:  # noqa: BLE001 - a status probe must not fail the cell
            status = {}
        owner = "started by this kernel" if self.cluster is not None else "connected"
        lines = [f"cluster ({owner}): {len(ids)} engine{'s' if len(ids) != 1 else ''}"]
        for eid in ids:
            queue = status.get(eid, {})
            busy = queue.get("tasks", 0) + queue.get("queue", 0) if isinstance(queue, dict) else 0
            lines.append(f"  engine {eid}: {'busy' if busy else 'up'}")
        return "\n".join(lines)

    def require(self) -> Any:
        self.wait_joined()
        if self.client is None:
            raise ClusterError("no cluster: use %cluster start N or %cluster connect FILE|PROFILE")
        if self.pid != os.getpid():
            self._reconnect_after_fork()
        return self.client

    def _reconnect_after_fork(self) -> None:
        """A worker restored from a snapshot is a fork of the one that made the Client:
        its sockets belong to that process's ZeroMQ context and would hang here.
        Connect anew from the connection file; the old one is kept, never closed (its
        sockets are not this process's to close)."""
        import ipyparallel as ipp

        _FORKED.append(self.client)
        self.client, self.last, self.pid = None, None, os.getpid()
        try:
            self.client = ipp.Client(self.connection_file)
        except Exception as exc:  # noqa: BLE001 - ipyparallel raises many kinds
            self.cluster = None  # nothing left to stop it with from here; the kernel will
            raise ClusterError(f"lost the cluster after the restore: {exc}") from None

    def view(self, targets: Any = None) -> Any:
        client = self.require()
        if not client.ids:
            raise ClusterError("the cluster has no engines (yet)")
        targets = targets if targets is not None else self.engines.targets
        if isinstance(targets, int):  # a list keeps the results a list, one per engine
            targets = [targets]
        return client.direct_view(targets)

    def execute(self, code: str, targets: Any = None, block: bool | None = None) -> Any:
        """Run ``code`` on the engines; streams output and waits unless non-blocking."""
        view = self.view(targets)
        result = view.execute(code, silent=False, block=False)
        self.last = result
        if not (self.engines.block if block is None else block):
            ids = ", ".join(str(e) for e in _engine_ids(view))
            print(f"<running on engines {ids}: %pxresult shows the result>")
            return None
        return self.follow(result)

    def follow(self, result: Any) -> Any:
        """Stream a task's output until it ends; engine errors end the cell."""
        shown: dict[tuple[int, str], int] = {}
        try:
            # the reply can come before the last output: wait for both
            while not (result.ready() and result.wait_for_output(0)):
                _show_new(result, shown)
                if result.ready():
                    result.wait_for_output(POLL)
                else:
                    result.wait(POLL)
        except KeyboardInterrupt:
            self._interrupt(result)
            raise
        _show_new(result, shown, final=True)
        _show_results(result)
        _raise_errors(result)
        return None

    def _interrupt(self, result: Any) -> None:
        """Ctrl+C: pass it on to the engines running the task and let them stop,
        so the engines are free (and their output spent) when the cell ends."""
        engines = sorted(
            {md.get("engine_id") for md in result.metadata if md.get("engine_id") is not None}
        )
        try:
            if engines:
                self.client.send_signal(signal.SIGINT, targets=engines, block=True)
            result.wait(INTERRUPT_GRACE)
            if not result.ready():
                result.abort()
            result.wait_for_output(INTERRUPT_GRACE)
        except Exception:  # noqa: BLE001 - interrupting is best effort
            pass


def _engine_ids(view: Any) -> list[int]:
    targets = view.targets
    if targets in (None, "all"):
        return list(view.client.ids)
    return [targets] if isinstance(targets, int) else list(targets)


def _label(md: dict[str, Any], index: int) -> str:
    eid = md.get("engine_id")
    return str(eid if eid is not None else index)


def _show_new(result: Any, shown: dict[tuple[int, str], int], final: bool = False) -> None:
    """Print the whole lines that arrived since the last look, labelled by engine
    (the rest of a line waits for its end, or for the task's end)."""
    for index, md in enumerate(result.metadata):
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            text = md.get(name) or ""
            done = shown.get((index, name), 0)
            end = len(text) if final else text.rfind("\n") + 1
            if end > done:
                stream.write(_prefixed(f"[{name}:{_label(md, index)}] ", text[done:end]))
                stream.flush()
                shown[(index, name)] = end
        outputs = md.get("outputs") or []
        done = shown.get((index, "outputs"), 0)
        for output in outputs[done:]:
            data = dict(output.get("data", {}))
            if data:
                data["text/plain"] = f"[output:{_label(md, index)}] " + data.get("text/plain", "")
                builtins.display(data, raw=True)  # type: ignore[attr-defined]
        shown[(index, "outputs")] = len(outputs)


def _prefixed(prefix: str, text: str) -> str:
    text = text if text.endswith("\n") else text + "\n"
    return "".join(prefix + line for line in text.splitlines(keepends=True))


def _show_results(result: Any) -> None:
    """Each engine's value of the last expression: ``Out[0:3]: 42``."""
    for index, md in enumerate(result.metadata):
        value = md.get("execute_result")
        if not value:
            continue
        text = value.get("data", {}).get("text/plain", "")
        count = value.get("execution_count", "")
        print(f"Out[{_label(md, index)}:{count}]: {text}")


def _raise_errors(result: Any) -> None:
    """Show every failed engine's traceback, then end the cell with a summary."""
    failed = []
    for index, md in enumerate(result.metadata):
        error = md.get("error")
        if error is None:
            continue
        label = _label(md, index)
        ename = getattr(error, "ename", type(error).__name__)
        evalue = getattr(error, "evalue", str(error))
        traceback = getattr(error, "traceback", None) or []
        if isinstance(traceback, str):  # ipyparallel's RemoteError keeps it joined
            traceback = traceback.splitlines()
        sys.stderr.write(f"[{label}:execute] {ename}: {evalue}\n")
        for line in traceback:
            sys.stderr.write(_prefixed(f"[{label}] ", line + "\n"))
        failed.append(f"engine {label}: {ename}: {evalue}")
    if failed:
        raise EngineFailure(
            f"{len(failed)} engine{'s' if len(failed) != 1 else ''} raised: " + "; ".join(failed)
        )


def wait_for_engines(client: Any, n: int, timeout: float = 60) -> None:
    """Block until ``n`` engines have registered (a freshly started cluster)."""
    deadline = time.monotonic() + timeout
    while len(client.ids) < n:
        if time.monotonic() > deadline:
            raise ClusterError(f"only {len(client.ids)} of {n} engines came up")
        time.sleep(POLL)


_FORKED: list[Any] = []  # Clients inherited through fork(), kept from the garbage collector
LINK = ClusterLink()
