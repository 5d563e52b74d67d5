"""CrashBanner: what happened when the kernel died, and what came back.

Shows the recovery report the kernel publishes
(``application/vnd.ipytui.recovery+json``), or a plain message when the
heartbeat is lost. It never touches the draft or the scrollback.
"""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical
from textual.widgets import Static


def _names(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k} ({v})" if v else str(k) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, dict):
                name = item.get("name", "?")
                why = item.get("reason") or item.get("why") or ""
                out.append(f"{name} ({why})" if why else str(name))
            else:
                out.append(str(item))
        return out
    return [str(value)] if value else []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _shorten(names: list[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … (+{len(names) - limit})"


def _where(report: dict[str, Any]) -> str | None:
    cell = report.get("cell")
    if isinstance(cell, dict):
        count = cell.get("execution_count")
        who = cell.get("username") or cell.get("who") or ""
        code = cell.get("code") or ""
        where = f"In [{count}]" if count is not None else "a cell"
    elif cell:
        return f"in {cell}"
    else:
        who = report.get("username") or ""
        code = report.get("code") or ""
        if not (who or code):
            return None
        count = report.get("execution_count")
        where = f"In [{count}]" if isinstance(count, int) else "a cell"
    lines = code.strip().splitlines()
    first = f": {lines[0][:60]}" if lines else ""
    return f"in {where}{' run by ' + who if who else ''}{first}"


def describe_report(report: dict[str, Any]) -> tuple[str, list[str]]:
    """Title and detail lines for a recovery report; tolerant of missing fields."""
    cause = report.get("cause") or report.get("reason") or "unknown cause"
    title = f"Kernel crashed: {cause}"
    lines = []
    where = _where(report)
    if where:
        lines.append(where)
    restored = _names(report.get("restored") or report.get("restored_names"))
    lost = _names(report.get("lost") or report.get("lost_names"))
    seconds = report.get("seconds") or report.get("duration")
    took = f" in {float(seconds):.2f}s" if isinstance(seconds, (int, float)) else ""
    method = report.get("restored_from") or report.get("source") or ""
    after = report.get("snapshot_after_cell")
    if method == "fresh":
        lines.append(f"no snapshot or checkpoint could serve: the kernel restarted empty{took}")
    elif method == "pending":
        lines.append("a new kernel is on its way")
    elif method == "stopped":
        lines.append("no new worker: it crashed too often in a row; F8 restarts it once the cause is fixed")
    else:
        origin = f" from a {method}" if method else ""
        if method == "snapshot" and after:
            origin += f" (state after In [{after}])"
        lines.append(f"restored {_plural(len(restored), 'name')}{origin}{took}: "
                     f"{_shorten(restored)}".rstrip(": "))
    if lost:
        lines.append(f"lost {len(lost)}: {_shorten(lost)}")
    lines.extend(f"note: {note}" for note in report.get("notes") or [] if isinstance(note, str))
    return title, lines


class CrashBanner(Vertical):
    """A banner over the output; Escape (or the next run) dismisses it."""

    DEFAULT_CSS = """
    CrashBanner {
        height: auto;
    }
    CrashBanner > Static {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = Static(classes="banner-title")
        self._body = Static(classes="banner-body")
        self.kind = ""
        self.plain = ""

    def compose(self):
        yield self._title
        yield self._body

    def show_report(self, report: dict[str, Any]) -> None:
        title, lines = describe_report(report)
        self._show("crash", title, lines)

    def show_message(self, kind: str, title: str, lines: list[str] | None = None) -> None:
        self._show(kind, title, lines or [])

    def _show(self, kind: str, title: str, lines: list[str]) -> None:
        for old in ("crash", "lost", "info"):
            self.remove_class(f"-{old}")
        self.kind = kind
        self.add_class("-open", f"-{kind}")
        self._title.update(title)
        self._body.update("\n".join(lines))
        self._body.display = bool(lines)
        self.plain = "\n".join([title, *lines])

    def hide(self) -> None:
        self.remove_class("-open")
        self.kind = ""

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")
