"""The three kernels of the undo benchmark and how each takes back one cell.

- ``ipykernel``: plain, no undo (the reference for every ratio);
- ``kishu``: ipykernel with Kishu 0.3.4 attached headlessly (``init_kishu`` on a
  private notebook file, Kishu's test mode so it never waits for a browser to
  save the notebook); undo is what ``kishu undo`` sends to the kernel: a
  *silent* request whose ``user_expressions`` calls ``_kishu.checkout`` on the
  commit before the newest one (silent, so Kishu does not commit it);
- ``kishu-cell`` (correctness table only): the same checkout typed in a normal
  cell instead. Driven as ``kishu undo`` drives it, a restore that re-runs a
  cell (Kishu's way back to an object it could not pickle) leaves ipykernel
  7 not answering execute requests any more; typed in a cell, it does not;
- ``ipytui``: ``--protection cell``, so the last cell is always undoable, as it
  is with Kishu; undo is ``%undo``.

Each kernel gets its own private directory tree, so the disk it writes can be
measured and removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel_bench import KernelRun
from leanclient import LeanClient
from procs import KERNEL_COMMANDS, Workdir

KINDS = ("ipykernel", "kishu", "ipytui")
CASE_KINDS = ("ipykernel", "kishu", "kishu-cell", "ipytui")
KERNEL_COMMANDS.setdefault(
    "ipytui-cell", [*KERNEL_COMMANDS["ipytui"][:-1], "--protection", "cell", "-f"]
)
_COMMAND = {
    "ipykernel": "ipykernel",
    "kishu": "ipykernel",
    "kishu-cell": "ipykernel",
    "ipytui": "ipytui-cell",
}


def kishu_available() -> bool:
    """Whether Kishu can be attached (it is an optional benchmark dependency)."""
    import importlib.util

    return importlib.util.find_spec("kishu") is not None


class KernelDidNotStart(RuntimeError):
    """The kernel never answered (on a busy machine, its port was taken meanwhile)."""


class StreamClient(LeanClient):
    """The lean client, also keeping stderr (Kishu reports its failures there) and the
    text of displays (ipytui's undo entry names the state it went back to) per request."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info)
        self.stderr: dict[str, list[str]] = {}
        self.shown: dict[str, list[str]] = {}

    def _record(self, sock, frames: list[bytes], now: float) -> None:
        super()._record(sock, frames, now)
        if sock is not self.iopub:
            return
        i = frames.index(b"<IDS|MSG>")
        header, parent, _, content = (json.loads(f) for f in frames[i + 2 : i + 6])
        if header["msg_type"] == "stream" and content.get("name") == "stderr":
            texts = self.stderr.get(parent.get("msg_id", ""))
            if texts is not None:
                texts.append(content.get("text", ""))
        elif header["msg_type"] == "display_data":
            texts = self.shown.get(parent.get("msg_id", ""))
            if texts is not None:
                texts.append(content.get("data", {}).get("text/plain", ""))


@dataclass
class Outcome:
    """One request's end: wall time (send -> reply and idle), reply content, stdout, stderr,
    the text of its displays."""

    ms: float
    reply: dict[str, Any]
    stdout: str
    stderr: str
    shown: str = ""

    @property
    def ok(self) -> bool:
        return self.reply.get("status") == "ok"

    def error(self) -> str:
        """The error in one line: the reply's, or a failed user expression's."""
        if not self.ok:
            return f"{self.reply.get('ename')}: {self.reply.get('evalue')}"
        for result in (self.reply.get("user_expressions") or {}).values():
            if result.get("status") == "error":
                return f"{result.get('ename')}: {result.get('evalue')}"
        return ""


class UndoKernel:
    """One kernel of one kind in its own workdir, with a stderr-keeping client."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.wd = Workdir()
        self.notebook = self.wd.root / "nb" / "bench.ipynb"
        env = dict(self.wd.env)
        if kind.startswith("kishu"):
            env.update(KISHU_PATH_ROOT=str(self.wd.root / "kishu"), ENV_KISHU_TEST_MODE="1")
        self.run = KernelRun(_COMMAND[kind], self.wd, env=env)
        self.run.client.close()
        self.client = self.run.client = StreamClient(self.run.info)

    def start(self) -> None:
        try:
            self.run.start(lambda *_: None)
        except TimeoutError as exc:
            log = (self.wd.root / "logs" / f"{_COMMAND[self.kind]}.log").read_text(errors="replace")
            raise KernelDidNotStart(f"{self.kind}: {exc}; its log ends: {log[-400:]!r}") from None
        if self.kind.startswith("kishu"):
            import nbformat

            self.notebook.parent.mkdir()
            nbformat.write(nbformat.v4.new_notebook(), self.notebook)
            # Kishu's post_run_cell complains about this very cell (its hooks came in
            # mid-cell); every later cell is committed.
            out = self.cell(f"from kishu import init_kishu; init_kishu({str(self.notebook)!r})")
            if not out.ok:
                raise RuntimeError(f"Kishu did not attach: {out.error()}")

    def stop(self) -> None:
        self.run.stop(grace=5.0)
        shutil.rmtree(self.wd.root, ignore_errors=True)

    @property
    def pid(self) -> int:
        return self.run.proc.pid

    def cell(self, code: str, timeout: float = 900.0, **extra: Any) -> Outcome:
        """Run one request to its reply and idle."""
        client = self.client
        t0 = time.perf_counter()
        msg_id = client.execute(code, stop_on_error=False, **extra)
        client.streams[msg_id], client.stderr[msg_id], client.shown[msg_id] = [], [], []
        try:
            done, reply = client.wait_done(msg_id, timeout)
        except TimeoutError as exc:
            seen = [
                what
                for what, box in (
                    ("busy", client.busy),
                    ("reply", client.replies),
                    ("idle", client.idle),
                )
                if msg_id in box
            ]
            raise TimeoutError(f"{self.kind}: {code[:40]!r}: {exc}; seen: {seen}") from None
        return Outcome(
            (done - t0) * 1e3,
            reply,
            "".join(client.streams.pop(msg_id)),
            "".join(client.stderr.pop(msg_id)),
            "".join(client.shown.pop(msg_id)),
        )

    def silent(self, expressions: dict[str, str], timeout: float = 900.0) -> Outcome:
        """A silent request that only evaluates ``user_expressions`` (Kishu commits nothing)."""
        return self.cell(
            "", timeout, silent=True, store_history=False, user_expressions=expressions
        )

    def undo(self, timeout: float = 900.0) -> Outcome | None:
        """Take back the last cell; None where the kernel cannot."""
        if self.kind == "ipytui":
            return self.cell("%undo", timeout)
        if not self.kind.startswith("kishu"):
            return None
        # What `kishu undo` does: the commit before the newest one, checked out
        # without touching the notebook. The look-up is part of the cost.
        look = self.silent(
            {"h": "[n.commit_id for n in _kishu._kishu_graph.list_history()][:2]"}, timeout
        )
        if look.error():
            return look
        history = _plain(look, "h")
        if len(history) < 2:
            return Outcome(
                look.ms,
                {"status": "error", "ename": "Kishu", "evalue": "no commit to undo"},
                "",
                "",
            )
        checkout = f"_kishu.checkout({history[1]!r}, skip_notebook=True)"
        if self.kind == "kishu-cell":  # as typed in a cell (Kishu commits that cell too)
            out = self.cell(checkout, timeout)
        else:
            out = self.silent({"r": checkout}, timeout)
        out.ms += look.ms
        return out

    def disk_bytes(self) -> int:
        """Bytes this kernel wrote in its private dirs (journal, checkpoints, Kishu's store)."""
        return sum(_du(self.wd.root / name) for name in ("data", "ipython", "nb", "kishu"))


def _plain(out: Outcome, name: str) -> Any:
    """A user expression's value (its text/plain, read as a Python literal)."""
    import ast

    text = out.reply["user_expressions"][name]["data"]["text/plain"]
    return ast.literal_eval(text)


def _du(path: Path) -> int:
    """Allocated bytes under a path (sparse files count what they hold)."""
    total = 0
    if not path.exists():
        return 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_blocks * 512
        except OSError:
            continue
    return total
