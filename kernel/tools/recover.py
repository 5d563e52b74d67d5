"""``ipytui recover``: bring back the work of a kernel that went down uncleanly.

A kernel whose supervisor died (kill -9, the machine going down) leaves a
stale lock file, its last pickle checkpoint and its journal behind. This
command says when and in which cell it went down, starts a new kernel from
the checkpoint, and can replay the journaled cells that ran after the
checkpoint: it always lists them first and runs them only when asked.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.events import plural
from ipytui.kernel.protocol.procs import kernel_id_from, snapshots_of
from ipytui.kernel.supervisor.lockfile import KernelLock, stale_locks
from ipytui.kernel.tools.leftovers import sweep as sweep_leftovers
from ipytui.kernel.tools.manage import find_lock
from ipytui.kernel.worker import checkpoint

START_TIMEOUT = 30.0
SNAPSHOT_TIMEOUT = 30.0  # seconds a dead kernel's snapshot may take to write its checkpoint
REPLAYABLE = "ok"  # only cells that finished cleanly are offered for replay


@dataclass
class Wreck:
    """What is known about one kernel that went down uncleanly."""

    lock: KernelLock
    session: dict[str, Any] | None = None
    last_seen: float | None = None
    running: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] | None = None
    state_error: str = ""
    after: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checkpoint_count(self) -> int:
        return int(self.state.get("execution_count", 0)) if self.state else 0

    @property
    def restorable(self) -> list[str]:
        if not self.state:
            return []
        return sorted({*self.state.get("modules", {}), *self.state.get("sources", {}),
                       *self.state.get("values", {})})

    @property
    def replayable(self) -> list[dict[str, Any]]:
        return [c for c in self.after if c.get("status") == REPLAYABLE and c.get("in_history", 1)]


def examine(lock: KernelLock) -> Wreck:
    """Read the journal and the checkpoint of a stale kernel."""
    from ipytui.kernel.protocol.journal import Journal

    wreck = Wreck(lock)
    if lock.checkpoint:
        _await_last_checkpoint(lock.checkpoint)
    if lock.checkpoint and Path(lock.checkpoint).exists():
        try:
            wreck.state = checkpoint.read(Path(lock.checkpoint))
        except Exception as exc:  # noqa: BLE001 - a bad checkpoint is reported, not fatal
            wreck.state_error = f"{type(exc).__name__}: {exc}"
    journal = Journal()
    try:
        session_id = lock.journal_session or None
        wreck.session = journal.session(session_id) if session_id else journal.last_session(lock.kernel_id)
        if wreck.session is not None:
            sid = wreck.session["id"]
            cells = journal.cells_since(sid, 0)
            wreck.running = journal.unfinished_cells(sid)
            wreck.after = [c for c in cells if c["execution_count"] > wreck.checkpoint_count]
            times = [t for c in cells for t in (c["started"], c["ended"]) if t]
            wreck.last_seen = max(times, default=None)
    finally:
        journal.close()
    return wreck


def _await_last_checkpoint(path: str, timeout: float = SNAPSHOT_TIMEOUT) -> None:
    """A snapshot of the dead kernel may still be writing its last checkpoint (it does
    so when it sees its supervisor gone): wait for it, bounded, so recovery has it."""
    deadline = time.monotonic() + timeout
    while snapshots_of(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "unknown"


def _first_line(code: str, width: int = 72) -> str:
    lines = code.strip().splitlines() or [""]
    text = lines[0] + (" …" if len(lines) > 1 else "")
    return text if len(text) <= width else text[: width - 1] + "…"


def _how_it_ended(lock: KernelLock) -> str:
    if lock.ended == "culled":
        return "was culled after a long time without clients"
    if lock.launched_by == "manager":
        return "was stopped by its manager"
    return "went down uncleanly"


def describe(wreck: Wreck) -> str:
    """The human account: when and where it went down, what can come back."""
    lock = wreck.lock
    out = [f"Kernel {lock.kernel_id} {_how_it_ended(lock)} (supervisor pid {lock.pid} on "
           f"{lock.host}, started {_when(lock.started)})."]
    out.append(f"  connection file: {lock.connection_file}")
    if wreck.last_seen:
        out.append(f"  last sign of life in the journal: {_when(wreck.last_seen)}")
    for cell in wreck.running:
        who = cell.get("username") or "a client"
        if wreck.state is not None and cell["execution_count"] <= wreck.checkpoint_count:
            # Its end had not reached the journal, but the checkpoint was taken after it.
            out.append(f"  cell [{cell['execution_count']}] had finished: the checkpoint "
                       f"holds its state ({_first_line(cell['code'])})")
            continue
        out.append(f"  it went down while running cell [{cell['execution_count']}] "
                   f"(started {_when(cell['started'])} by {who}): {_first_line(cell['code'])}")
    if wreck.session is None:
        out.append("  the journal has no record of it")
    elif not wreck.running and not lock.ended:
        out.append("  no cell was running: it went down while idle")
    if wreck.state is not None:
        names = wreck.restorable
        out.append(f"  checkpoint: after cell [{wreck.checkpoint_count}], written "
                   f"{_when(wreck.state.get('time'))}: {plural(len(names), 'name')}"
                   + (f" ({', '.join(names)})" if names else ""))
        for name, why in wreck.state.get("unpicklable", {}).items():
            out.append(f"    not in the checkpoint: {name} ({why})")
    elif wreck.state_error:
        out.append(f"  checkpoint unreadable: {wreck.state_error}")
    else:
        out.append("  no checkpoint: a new kernel starts empty")
    if wreck.after:
        out.append("  cells after the checkpoint:")
        for cell in wreck.after:
            status = cell.get("status") or "running"
            mark = "replayable" if cell in wreck.replayable else "not replayed"
            out.append(f"    [{cell['execution_count']}] {status:<8} {mark:<12} {_first_line(cell['code'], 56)}")
    return "\n".join(out)


# -- starting the new kernel ---------------------------------------------------------
def start_restored(wreck: Wreck) -> tuple[Path, subprocess.Popen[bytes]]:
    """Start a detached kernel on a new connection file from (a copy of) the checkpoint.

    The copy is the new kernel's own checkpoint path, so it can fall back on
    it even before its first snapshot.
    """
    from ipytui.kernel.protocol.connection import new_connection_info, write_connection_file
    from ipytui.kernel.protocol.paths import checkpoints_dir, data_dir

    path = write_connection_file(new_connection_info())
    argv = [sys.executable, "-m", "ipytui.kernel", "-f", str(path), "--owns-connection-file"]
    if wreck.state is not None:
        copy = checkpoints_dir() / f"{kernel_id_from(path)}.pickle"
        shutil.copy2(wreck.lock.checkpoint, copy)
        argv += ["--restore-from", str(copy)]
    log_path = data_dir() / f"{path.stem}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    return path, proc


async def _serve(path: Path, proc: subprocess.Popen[bytes], cells: list[dict[str, Any]]) -> bool:
    """Wait for the new kernel, then replay cells in order; False at the first failure."""
    from ipytui.kernel.client.kernel_client import KernelClient
    from ipytui.kernel.protocol.connection import read_connection_file

    client = KernelClient(read_connection_file(path))
    await client.start()
    try:
        ready = asyncio.ensure_future(client.wait_ready(timeout=START_TIMEOUT))
        while not ready.done():
            if proc.poll() is not None:
                ready.cancel()
                raise RuntimeError(f"the new kernel exited with status {proc.returncode}")
            await asyncio.sleep(0.05)
        await ready
        for cell in cells:
            result = await client.execute(cell["code"], timeout=None)
            label = f"  [{cell['execution_count']}] replayed as [{result.execution_count}]:"
            if result.status != "ok":
                ename, evalue = result.error or (result.status, "")
                print(f"{label} {ename}: {evalue}; stopped replaying here")
                return False
            print(f"{label} ok")
        return True
    finally:
        await client.stop()


def _ask(question: str, default: bool) -> bool:
    try:
        answer = input(f"{question} [{'Y/n' if default else 'y/N'}] ").strip().lower()
    except EOFError:
        return False
    return default if not answer else answer in ("y", "yes")


# -- the command -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipytui recover",
        description="Bring back the work of a kernel that went down uncleanly "
                    "(its stale lock, checkpoint and journal).")
    parser.add_argument("id", nargs="?", metavar="ID", help="the stale kernel (default: the newest)")
    parser.add_argument("--list", action="store_true", help="only say what went down and what can come back")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask: start the restored kernel")
    replay = parser.add_mutually_exclusive_group()
    replay.add_argument("--replay", action="store_true", default=None,
                        help="re-run the listed cells that ran after the checkpoint")
    replay.add_argument("--no-replay", dest="replay", action="store_false",
                        help="do not re-run them (the default with --yes)")
    parser.add_argument("--discard", action="store_true",
                        help="forget the stale kernel: remove its lock and checkpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sweep_leftovers()
    locks = stale_locks()
    if args.id:
        chosen = find_lock(locks, args.id)
        if chosen is None:
            print(f"ipytui recover: no stale kernel {args.id!r}"
                  + (f"; stale: {', '.join(lock.kernel_id for lock in locks)}" if locks else ""),
                  file=sys.stderr)
            return 2
        locks = [chosen]
    if not locks:
        print("No kernel went down uncleanly: nothing to recover.")
        return 0
    if args.list:
        print("\n\n".join(describe(examine(lock)) for lock in locks))
        return 0
    wreck = examine(locks[0])
    print(describe(wreck))
    if len(locks) > 1:
        print(f"\n({len(locks) - 1} more: {', '.join(lock.kernel_id for lock in locks[1:])}; "
              "name one to recover it instead.)")
    if args.discard:
        _forget(wreck)
        print(f"\nForgot kernel {wreck.lock.kernel_id}.")
        return 0
    return recover(wreck, yes=args.yes, replay=args.replay)


def recover(wreck: Wreck, yes: bool, replay: bool | None) -> int:
    what = "restored from the checkpoint" if wreck.state is not None else "(empty: no checkpoint)"
    if not yes and not _ask(f"\nStart a new kernel {what}?", default=True):
        print("Nothing done; the stale kernel stays listed.")
        return 1
    cells = wreck.replayable
    if cells:
        print(f"\n{plural(len(cells), 'cell')} ran after the checkpoint and can be replayed:")
        for cell in cells:
            print(f"  [{cell['execution_count']}] " + cell["code"].rstrip().replace("\n", "\n      "))
        if replay is None:
            replay = False if yes else _ask(f"Replay {'it' if len(cells) == 1 else 'them'} in the new kernel?", default=False)
        if not replay:
            print("Not replayed (--replay runs them).")
    to_run = cells if replay else []
    path, proc = start_restored(wreck)
    new_id = kernel_id_from(path)
    print(f"\nStarting kernel {new_id} (pid {proc.pid})…")
    try:
        replayed = asyncio.run(_serve(path, proc, to_run))
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - tell, keep the stale kernel
        print(f"ipytui recover: the new kernel did not come up: {exc}", file=sys.stderr)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        path.unlink(missing_ok=True)
        if wreck.state is not None:
            from ipytui.kernel.protocol.paths import checkpoints_dir

            (checkpoints_dir() / f"{new_id}.pickle").unlink(missing_ok=True)
        return 1
    _forget(wreck)
    restored = f" with {plural(len(wreck.restorable), 'name')} restored" if wreck.state is not None else ""
    print(f"\nKernel {new_id} is running{restored}{'' if replayed else ' (replay stopped early)'}.")
    print(f"Connection file: {path}")
    print(f"Attach with:\n  ipytui --existing {path}")
    return 0 if replayed else 1


def _forget(wreck: Wreck) -> None:
    """Remove the stale lock and the old checkpoint (a copy went to the new kernel), and the
    old connection file if the kernel owned it: nothing listens on it any more."""
    wreck.lock.remove()
    if wreck.lock.checkpoint:
        Path(wreck.lock.checkpoint).unlink(missing_ok=True)
    if wreck.lock.owns_connection_file:
        Path(wreck.lock.connection_file).unlink(missing_ok=True)


def offerable(wreck: Wreck) -> bool:
    """Whether ``ipytui`` should offer this kernel at start.

    A Jupyter kernel manager kills its kernels on purpose (``shutdown_kernel(now=True)``):
    such a kernel is offered only if cells ran after its last checkpoint, work that
    would otherwise be lost without a word.
    """
    return wreck.lock.launched_by != "manager" or bool(wreck.after)


def offers() -> list[Wreck]:
    """The stale kernels worth offering at start, newest first (reads journal and checkpoints)."""
    return [wreck for wreck in map(examine, stale_locks()) if offerable(wreck)]


async def recover_quietly(wreck: Wreck) -> Path:
    """Start a kernel restored from the wreck's checkpoint, wait until it answers, forget
    the wreck; returns the new connection file. Raises (and cleans up) if it does not come up."""
    path, proc = start_restored(wreck)
    try:
        await _serve(path, proc, [])
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
        path.unlink(missing_ok=True)
        raise
    _forget(wreck)
    return path


def discard(wreck: Wreck) -> None:
    """Forget a stale kernel for good: its lock, checkpoint and connection file."""
    _forget(wreck)


if __name__ == "__main__":
    sys.exit(main())
