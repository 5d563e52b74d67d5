"""The kernel's ipyparallel cluster on the screen: engines in the status bar,
one engine's own stream in the cluster pane.

The kernel tells every client its engines' state in ``cluster`` events
(with the Hub's IOPub address and key). The pane's feed subscribes to the
Hub directly rather than through the kernel: the Hub filters by topic, so
only the engine on screen is sent, to this UI only, and it keeps coming
while the kernel is busy in a long cell or restoring after a crash. What an
engine said while it was on screen is kept per engine, so cycling back
shows it again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ipytui.widgets.cluster_pane import ClusterPane
from ipytui.widgets.kernel_status import KernelStatus
from rich.text import Text

KEPT_LINES = 500  # per engine, for when it comes back on screen


def message_lines(msg: Any) -> list[Text]:
    """What one engine IOPub message shows in the pane (nothing for status and such)."""
    content = msg.content if isinstance(msg.content, dict) else {}
    kind = msg.msg_type
    if kind == "stream":
        text = str(content.get("text", "")).rstrip("\n")
        return [Text.from_ansi(line) for line in text.split("\n")] if text else []
    if kind == "execute_input":
        code = str(content.get("code", "")).rstrip("\n")
        return [Text(f"In [{content.get('execution_count', ' ')}]: {code}")]
    if kind in ("execute_result", "display_data"):
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        text = str(data.get("text/plain", "")).rstrip("\n")
        prefix = f"Out[{content['execution_count']}]: " if "execution_count" in content else ""
        return [Text.from_ansi(prefix + text)] if text or prefix else []
    if kind == "error":
        lines = [str(line) for line in content.get("traceback") or []]
        lines = lines or [f"{content.get('ename')}: {content.get('evalue')}"]
        return [Text.from_ansi(line) for line in "\n".join(lines).split("\n")]
    return []


class ClusterView:
    """Engines and the engine feed for MainScreen (which runs ``pump`` as a worker)."""

    def __init__(self, status: KernelStatus, pane: ClusterPane) -> None:
        self.status = status
        self.pane = pane
        self.engines: list[dict[str, Any]] = []
        self.iopub: dict[str, Any] | None = None
        self.feed: Any = None  # EngineFeed, made when the pane first opens
        self.kept: dict[int, deque[Text]] = {}
        self.problem = ""
        self.told_at = 0.0  # the time of the event shown: an older one (a replay) is stale

    def on_event(self, event: dict[str, Any]) -> None:
        """A ``cluster`` event from the kernel: redraw the engines, follow the Hub."""
        when = event.get("time")
        if isinstance(when, (int, float)):
            if when < self.told_at:
                return
            self.told_at = float(when)
        if isinstance(event.get("error"), str):
            self.problem = event["error"]
            self.status.set(engines=[], cluster_note="cluster: failed")
            self._retitle()
            return
        engines = event.get("engines") if isinstance(event.get("engines"), list) else []
        self.engines = [e for e in engines if isinstance(e, dict) and isinstance(e.get("id"), int)]
        self.problem = ""
        self.status.set(engines=self.engines, cluster_note="")
        iopub = event.get("iopub") if isinstance(event.get("iopub"), dict) else None
        if iopub != self.iopub:
            self._close_feed()
            self.iopub = iopub
        if self.pane.is_open:
            self._follow(self.pane.engine if self._known(self.pane.engine) else self._first())
        self._retitle()

    def next_engine(self) -> None:
        """Open the pane, or move it to the next engine (F12)."""
        if not self.pane.is_open:
            self.pane.open()
            self._follow(self.pane.engine if self._known(self.pane.engine) else self._first())
            return
        ids = [e["id"] for e in self.engines]
        if not ids:
            return
        current = self.pane.engine
        after = [i for i in ids if current is None or i > current]
        self._follow(after[0] if after else ids[0])

    def _follow(self, engine: int | None) -> None:
        if engine is not None and self.iopub is not None:
            if self.feed is None:
                try:
                    from ipytui.kernel.client.cluster_iopub import EngineFeed

                    self.feed = EngineFeed(self.iopub)
                except (ValueError, OSError) as exc:  # zmq errors are OSErrors
                    self.problem = f"cannot listen to the engines: {exc}"
            if self.feed is not None:
                self.feed.follow(engine)
        self.pane.show_engine(engine, self._state(engine), list(self.kept.get(engine, ())))
        self._retitle()

    async def pump(self) -> None:
        """Move the followed engine's messages into the pane, until the screen ends."""
        while True:
            feed = self.feed
            if feed is None:
                await asyncio.sleep(0.1)  # a pane not yet open: nothing to listen to
                continue
            try:
                got = await feed.recv()
            except Exception:  # noqa: BLE001 - a feed closed under us (a new cluster)
                await asyncio.sleep(0.1)
                continue
            if got is None:
                continue
            engine, msg = got
            lines = message_lines(msg)
            kept = self.kept.setdefault(engine, deque(maxlen=KEPT_LINES))
            kept.extend(lines)
            if engine == self.pane.engine:
                for line in lines:
                    self.pane.append(line)

    def close(self) -> None:
        self._close_feed()

    def _close_feed(self) -> None:
        if self.feed is not None:
            self.feed.close()
            self.feed = None

    def _retitle(self) -> None:
        if self.pane.engine is None:
            self.pane.set_title(self.problem or ("no engines" if not self.engines else ""))
        else:
            self.pane.set_title(self._state(self.pane.engine))

    def _state(self, engine: int | None) -> str:
        return next((str(e.get("state")) for e in self.engines if e["id"] == engine), "")

    def _known(self, engine: int | None) -> bool:
        return any(e["id"] == engine for e in self.engines)

    def _first(self) -> int | None:
        live = [e["id"] for e in self.engines if e.get("state") != "dead"]
        return live[0] if live else (self.engines[0]["id"] if self.engines else None)
