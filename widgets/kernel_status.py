"""KernelStatus: one line about the kernel.

State, kernel name and implementation, execution count, crash protection
(the level, the undo steps kept, the cell the restore point follows and its
age; an ipytui kernel reports them), pid and memory (when the kernel reports
them), uptime, restarts and the last crash cause, connection (local/remote,
encrypted or not), the heartbeat, and disk writes the kernel had to pause
(``checkpoints paused: no space left on the device``). The state label
carries a class per state (``-idle``, ``-busy``, ``-dead``…) for the
stylesheet; the protection label ``-unprotected`` when nothing would come
back from a crash, and ``-partial`` when cells ran after the restore point.
With an ipyparallel cluster, its engines and their state
(``engines 0 up · 1 busy · 2 dead``; ``-dead`` when one is).
"""

from __future__ import annotations

import re
import time

from textual.containers import Horizontal
from textual.widgets import Label

STATES = ("starting", "idle", "busy", "dead", "restarting", "unreachable")
_STATE_MARK = {"idle": "●", "busy": "◉", "dead": "✖", "restarting": "↻", "starting": "…"}


def format_bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit in ("B", "KB") else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def format_uptime(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


# How a paused disk feature reads, by the kernel's feature key.
_DISK_NAMES = {"checkpoint": "checkpoints", "journal": "journal", "lock": "lock file"}


def disk_text(paused: dict[str, str]) -> str:
    """'⚠ checkpoints paused: no space left on the device' (+ the others, named)."""
    if not paused:
        return ""
    names = [_DISK_NAMES.get(key, key) for key in paused]
    first = next(iter(paused.values()))
    return f"⚠ {' · '.join(names)} paused: {first}"


def engines_text(engines: list[dict]) -> str:
    """``engines 0 up · 1 busy · 2 dead`` (empty without a cluster)."""
    if not engines:
        return ""
    return "engines " + " · ".join(f"{e.get('id')} {e.get('state')}" for e in engines)


def short_cause(cause: str) -> str:
    """A crash cause short enough for the status line: the signal's name when the
    cause gives one (``segmentation fault (SIGSEGV)`` -> ``SIGSEGV``); the banner
    and the cell have the whole story."""
    signal = re.search(r"\b(SIG[A-Z0-9]+)\b", cause)
    if signal:
        return signal.group(1)
    return cause if len(cause) <= 24 else cause[:23] + "…"


class KernelStatus(Horizontal):
    """The status bar; the screen sets fields with ``set(...)``."""

    DEFAULT_CSS = """
    KernelStatus {
        height: 1;
    }
    KernelStatus > Label {
        width: auto;
    }
    """

    def __init__(self, *, id: str | None = None, show_volatile: bool = True) -> None:
        super().__init__(id=id)
        self.show_volatile = show_volatile
        self.state = "starting"
        self.kernel_name = ""
        self.implementation = ""
        self.execution_count: int | None = None
        self.pid: int | None = None
        self.memory: int | None = None
        self.started_at: float | None = None
        self.restarts = 0
        self.last_crash = ""
        self.remote = False
        self.encrypted = False
        self.heartbeat: bool | None = None
        self.disk: dict[str, str] = {}  # paused disk feature -> why (the kernel's word)
        self.protection: dict | None = None  # kernel_info's ipytui.protection
        self.engines: list[dict] = []  # the cluster's engines: {"id", "state"}, as the kernel said
        self.cluster_note = ""  # the cluster's trouble, when it has one
        self._point_at: float | None = None
        self._labels = {
            name: Label(id=f"ks-{name}", classes="ks-item")
            # Most useful first: a narrow terminal clips from the right.
            for name in ("state", "disk", "kernel", "count", "restarts", "engines", "proc",
                         "protection", "conn", "hb", "uptime")
        }

    def compose(self):
        yield from self._labels.values()

    def on_mount(self) -> None:
        self.redraw()
        if self.show_volatile:
            self.set_interval(1.0, self._draw_uptime)

    def set(self, **fields) -> None:
        """Update some fields (names as the attributes) and redraw."""
        for name, value in fields.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise AttributeError(f"KernelStatus has no field {name!r}")
            setattr(self, name, value)
        if "protection" in fields:
            point = (self.protection or {}).get("restore_point") or {}
            age = point.get("age_seconds")
            self._point_at = time.time() - age if isinstance(age, (int, float)) else None
        if self.is_mounted:
            self.redraw()

    def redraw(self) -> None:
        labels = self._labels
        state = labels["state"]
        for name in STATES:
            state.set_class(name == self.state, f"-{name}")
        state.update(f"{_STATE_MARK.get(self.state, '?')} {self.state}")
        name, impl = self.kernel_name, self.implementation
        kernel = impl if name and impl.startswith(name) else " · ".join(p for p in (name, impl) if p)
        self._show("kernel", kernel)
        self._show("count", f"[{self.execution_count}]" if self.execution_count else "")
        proc = []
        if self.pid:
            proc.append(f"pid {self.pid}")
        if self.memory:
            proc.append(format_bytes(self.memory))
        self._show("proc", " · ".join(proc) if self.show_volatile else "")
        self._draw_uptime()
        restarts = f"restarts {self.restarts}" if self.restarts else ""
        if self.last_crash:
            restarts = f"{restarts} · last crash: {short_cause(self.last_crash)}".strip(" ·")
        self._show("restarts", restarts)
        labels["restarts"].set_class(bool(self.last_crash), "-crashed")
        insecure = self.remote and not self.encrypted
        conn = ("remote" if self.remote else "local") + (" · encrypted" if self.encrypted else "")
        self._show("conn", f"{conn} · ⚠ insecure" if insecure else conn)
        labels["conn"].set_class(insecure, "-insecure")
        hb = {None: "", True: "♥ hb", False: "♡ hb lost"}[self.heartbeat]
        if not self.show_volatile and self.heartbeat is not False:
            hb = ""  # its arrival time varies; only a loss is shown in fixed views
        self._show("hb", hb)
        labels["hb"].set_class(self.heartbeat is False, "-lost")
        self._show("engines", engines_text(self.engines) or self.cluster_note)
        labels["engines"].set_class(any(e.get("state") == "dead" for e in self.engines), "-dead")
        labels["engines"].set_class(bool(self.cluster_note), "-failed")
        self._show("disk", disk_text(self.disk))
        labels["disk"].set_class(bool(self.disk), "-paused")

    def _draw_uptime(self) -> None:
        text = ""
        if self.show_volatile and self.started_at:
            text = f"up {format_uptime(time.time() - self.started_at)}"
        self._show("uptime", text)
        self._draw_protection()

    def _draw_protection(self) -> None:
        """``⛨ idle · undo 2 · point [5] 12s`` (the age only where volatile fields show)."""
        info = self.protection if isinstance(self.protection, dict) else None
        label = self._labels["protection"]
        level = str(info.get("level", "")) if info else ""
        point = (info or {}).get("restore_point") or {}
        unprotected = level == "off" or (level != "checkpoint" and bool(info) and not point)
        partial = bool(point.get("cells_after")) or level == "checkpoint"
        label.set_class(unprotected, "-unprotected")
        label.set_class(partial and not unprotected, "-partial")
        if not level:
            self._show("protection", "")
            return
        parts = [f"⛨ {level}"]
        if not self.show_volatile:  # the restore point arrives just after a cell's reply
            self._show("protection", parts[0])
            return
        if info.get("undo_available"):
            parts.append(f"undo {info['undo_available']}")
        if point:
            where = f"point [{point.get('after_cell')}]"
            if self._point_at is not None:
                where += f" {format_uptime(time.time() - self._point_at)}"
            parts.append(where)
            if partial:
                parts.append(f"{len(point['cells_after'])} cell(s) after it")
        elif level == "checkpoint":
            parts.append("pickle checkpoint only, no undo")
        elif level != "off":
            parts.append("no restore point yet")
        self._show("protection", " · ".join(parts))

    def _show(self, name: str, text: str) -> None:
        label = self._labels[name]
        label.update(text)
        label.display = bool(text)

    @property
    def plain(self) -> str:
        return "  ".join(str(label.render()) for label in self._labels.values() if label.display)
