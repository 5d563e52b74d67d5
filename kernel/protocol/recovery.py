"""The recovery report: the mimetype clients read, and its plain-text form."""

from __future__ import annotations

from typing import Any

from ipytui.kernel.protocol.events import client_name

REPORT_MIME = "application/vnd.ipytui.recovery+json"


def report_text(report: dict[str, Any]) -> str:
    """The recovery report as plain text, for clients that know no ipytui mimetype."""
    if report.get("code") or report.get("session"):
        lines = [f"KernelDied: {report['cause']}, in a cell run by {client_name(report.get('username'))}."]
    else:
        lines = [f"KernelDied: {report['cause']}, while no cell ran."]
    method = report["restored_from"]
    if method == "snapshot":
        lines.append(f"Restored the state after cell [{report['snapshot_after_cell']}] "
                     f"from a snapshot in {report['seconds']:.2f} s.")
    elif method == "checkpoint":
        lines.append(f"Restored from the last checkpoint in {report['seconds']:.2f} s.")
    elif method == "fresh":
        lines.append("No snapshot or checkpoint was available: the new kernel starts empty.")
    elif method == "stopped":
        lines.append("No new worker was started.")
    else:
        lines.append("A new worker is on its way.")
    if report["restored"]:
        lines.append("Restored: " + ", ".join(report["restored"]))
    for name, why in report["lost"].items():
        lines.append(f"Lost: {name} ({why})")
    lines.extend(f"Note: {note}" for note in report["notes"])
    return "\n".join(lines)


def report_bundle(report: dict[str, Any]) -> dict[str, Any]:
    """display_data content carrying both forms of the report."""
    return {"data": {"text/plain": report_text(report), REPORT_MIME: report},
            "metadata": {}, "transient": {}}
