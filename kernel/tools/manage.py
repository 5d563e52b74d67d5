"""``ipytui list`` and ``ipytui stop``: the kernels this user runs, from their lock files.

Every running kernel (supervisor) holds a lock file; one whose process is gone
is *stale*: the kernel went down uncleanly, was killed by the Jupyter kernel
manager that launched it, or culled itself after a long time without
clients. ``ipytui list`` says which, and ``ipytui recover`` brings the work back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

from ipytui.kernel.supervisor.lockfile import KernelLock, read_locks
from ipytui.kernel.tools.leftovers import sweep as sweep_leftovers

STOP_TIMEOUT = 10.0


def matching_locks(locks: list[KernelLock], ident: str) -> list[KernelLock]:
    """The locks an id names: the exact kernel id or connection file, else every kernel
    whose id (with or without its ``ipytui-`` prefix) starts with ``ident``."""
    for lock in locks:
        if ident in (lock.kernel_id, lock.connection_file) or (
                os.path.basename(lock.connection_file) == ident):
            return [lock]
    return [lock for lock in locks if ident and (
        lock.kernel_id.startswith(ident) or lock.kernel_id.removeprefix("ipytui-").startswith(ident))]


def find_lock(locks: list[KernelLock], ident: str) -> KernelLock | None:
    """The lock named by a kernel id, a unique id prefix or its connection file."""
    matches = matching_locks(locks, ident)
    return matches[0] if len(matches) == 1 else None


def no_such_kernel(command: str, locks: list[KernelLock], ident: str) -> str:
    """Why ``ident`` names no single kernel, for an error line."""
    matches = matching_locks(locks, ident)
    if len(matches) > 1:
        return (f"ipytui {command}: {ident!r} matches {len(matches)} kernels "
                f"({', '.join(m.kernel_id for m in matches)}); give more of the id")
    return f"ipytui {command}: no kernel {ident!r}; `ipytui list` shows them"


def age(seconds: float) -> str:
    """3s, 4m12s, 2h05m, 3d04h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


# -- ipytui list ---------------------------------------------------------------
def state_of(lock: KernelLock, alive: bool) -> str:
    """alive idle|busy, culled, stopped (by its manager) or stale (went down uncleanly)."""
    if alive:
        return f"alive {lock.activity}"
    if lock.ended == "culled":
        return "culled"
    return "stopped" if lock.launched_by == "manager" else "stale"


def why(lock: KernelLock, alive: bool, now: float) -> str:
    """One line on why the kernel is where it is."""
    by = "launched by a Jupyter kernel manager" if lock.launched_by == "manager" else "launched by you"
    if alive and lock.clients:
        return f"{lock.clients} client(s) attached; {by}"
    if alive:
        alone = age(now - lock.alone_since) if lock.alone_since else "?"
        cull = f"; culled after {age(lock.cull_after)} alone" if lock.cull_after else "; never culled"
        return f"orphan: no client for {alone}{cull}; {by}"
    if lock.ended == "culled":
        return (f"culled after {age(lock.cull_after)} without clients, checkpoint kept: "
                f"`ipytui recover {lock.kernel_id}` brings it back")
    if lock.launched_by == "manager":
        return "stopped by its manager (killed on purpose); its checkpoint is kept"
    return f"went down uncleanly: `ipytui recover {lock.kernel_id}` brings its work back"


def list_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ipytui list", description="List ipytui kernels (running and stale) from their lock files.")
    parser.add_argument("--json", action="store_true", help="one JSON object per kernel")
    args = parser.parse_args(argv)
    sweep_leftovers()
    locks = read_locks()
    now = time.time()
    rows, reasons = [], []
    for lock in locks:
        alive = lock.is_alive()
        rows.append((lock.kernel_id, str(lock.pid), age(now - lock.started), state_of(lock, alive),
                     str(lock.clients) if alive else "-", lock.connection_file))
        reasons.append(why(lock, alive, now))
    if args.json:
        import json

        for (kernel_id, pid, started, state, clients, path), reason in zip(rows, reasons, strict=True):
            print(json.dumps({"id": kernel_id, "pid": int(pid), "age": started, "state": state,
                              "clients": int(clients) if clients.isdigit() else 0,
                              "connection_file": path, "why": reason}))
        return 0
    if not rows:
        print("No ipytui kernels.")
        return 0
    header = ("ID", "PID", "AGE", "STATE", "CLIENTS", "CONNECTION FILE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print("  ".join(cell.ljust(w) for cell, w in zip(header[:5], widths, strict=True)) + "  " + header[5])
    for row, reason in zip(rows, reasons, strict=True):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5])
        print(f"  └ {reason}")
    return 0


# -- ipytui stop -----------------------------------------------------------------
def stop_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ipytui stop", description="Shut a running ipytui kernel down (shutdown_request).")
    parser.add_argument("id", metavar="ID", help="kernel id (or a unique prefix), or its connection file")
    parser.add_argument("--force", action="store_true",
                        help="send SIGTERM to the supervisor if it does not answer")
    args = parser.parse_args(argv)
    locks = read_locks()
    lock = find_lock(locks, args.id)
    if lock is None:
        print(no_such_kernel("stop", locks, args.id), file=sys.stderr)
        return 2
    if not lock.is_alive():
        print(f"ipytui stop: kernel {lock.kernel_id} is not running (it went down uncleanly); "
              f"`ipytui recover {lock.kernel_id}` brings its work back", file=sys.stderr)
        return 1
    try:
        asyncio.run(_shutdown(lock.connection_file))
    except Exception as exc:  # noqa: BLE001 - any failure: say it, maybe force
        print(f"ipytui stop: kernel {lock.kernel_id} did not answer ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        if not args.force:
            print("  --force sends SIGTERM to its supervisor", file=sys.stderr)
            return 1
        os.kill(lock.pid, signal.SIGTERM)
    if not _wait_gone(lock, STOP_TIMEOUT):
        print(f"ipytui stop: kernel {lock.kernel_id} (pid {lock.pid}) is still running", file=sys.stderr)
        return 1
    print(f"Stopped kernel {lock.kernel_id}.")
    return 0


async def _shutdown(connection_file: str) -> None:
    from ipytui.kernel.client.kernel_client import KernelClient
    from ipytui.kernel.protocol.connection import read_connection_file

    client = KernelClient(read_connection_file(connection_file))
    await client.start()
    try:
        await client.shutdown(timeout=STOP_TIMEOUT)
    finally:
        await client.stop()


def _wait_gone(lock: KernelLock, timeout: float) -> bool:
    """True once the supervisor has exited and removed its lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not lock.path.exists() or not lock.is_alive():
            return True
        time.sleep(0.05)
    return False
