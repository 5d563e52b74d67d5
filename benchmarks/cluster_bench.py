"""%px on one ipyparallel cluster, ipytui next to ipykernel with ipyparallel's own %px.

One local cluster (a controller and 2 stock engines) serves both kernels, which
take turns. ipytui joins it with ``--cluster FILE`` (and so runs its engine
watcher: registration notifications and the engines' status messages, its
Client's notification socket read every 0.5 s); ipykernel runs
``rc = ipyparallel.Client(FILE); rc.activate()``, ipyparallel's own ``%px``.

- **px round trip**: ``%px print('ok', N)`` from execute_request until reply and
  idle; correct when both engines' ``[stdout:ID] ok N`` lines reached the client.
- **plain cell**: ``x = N`` the same way, the kernel's own per-cell cost (ipytui's
  crash protection) beside the %px figure; also on an ipytui kernel that joined
  no cluster (``ipytui-alone``), to see what being in a cluster adds.
- **idle cost**: CPU seconds the controller's processes and the kernel's used
  over an idle window with the kernel attached, once its tree is quiet after
  the last cell (snapshots and checkpoints are not this; what the engine watcher
  costs; an idle ipytui kernel without a cluster uses about 0.02 s in 10 s).
  Correct when the kernel still reaches both engines afterwards.

    python benchmarks/cluster_bench.py [--n 30] [--idle 10] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psutil
from leanclient import LeanClient
from procs import (
    KERNEL_COMMANDS,
    Workdir,
    install_handlers,
    kill_tree,
    read_info,
    spawn,
    tree,
    wait_quiet,
)


class TextClient(LeanClient):
    """Also keeps display_data's text/plain with the stdout of a watched request:
    ipyparallel's own %px shows engine output as display_data, ours as stream."""

    def _record(self, sock, frames, now) -> None:
        super()._record(sock, frames, now)
        if sock is not self.iopub:
            return
        i = frames.index(b"<IDS|MSG>")
        header, parent, content = (json.loads(frames[i + k]) for k in (2, 3, 5))
        texts = self.streams.get(parent.get("msg_id", ""))
        if texts is not None and header["msg_type"] == "display_data":
            texts.append(str(content.get("data", {}).get("text/plain", "")))


SETTLE = 5.0  # seconds after the last cell before the idle window (ipytui's idle-level
# restore point comes 2 s after a cell, its checkpoint writer after that)


def start_cluster(wd: Workdir, n: int = 2) -> tuple[object, Path]:
    import os

    import ipyparallel as ipp
    from IPython.core.profiledir import ProfileDir

    os.environ["IPYTHONDIR"] = str(wd.root / "ipython")
    profile = ProfileDir.create_profile_dir_by_name(str(wd.root / "ipython"), "default")
    cluster = ipp.Cluster(n=n, log_level=40, profile_dir=profile.location)
    client = cluster.start_and_connect_sync(activate=False)
    client.wait_for_engines(n, timeout=300)
    client.close()
    found = sorted(Path(profile.location, "security").glob("ipcontroller-*client.json"))
    return cluster, found[-1]


KINDS = ("ipytui", "ipytui-alone", "ipykernel")  # ipytui-alone: no cluster, no %px


def start_kernel(kind: str, wd: Workdir, client_file: Path) -> tuple[object, TextClient]:
    path = wd.connection_file(kind)
    argv = [*KERNEL_COMMANDS[kind.removesuffix("-alone")], str(path)]
    if kind == "ipytui":
        argv = [*KERNEL_COMMANDS[kind][:-1], "--cluster", str(client_file), "-f", str(path)]
    proc = spawn(argv, wd.env, wd.log(kind))
    client = TextClient(read_info(path))
    client.wait_reply(client.send("shell", "kernel_info_request", {}), 60)
    client.wait_iopub(60)
    if kind == "ipytui-alone":
        return proc, client
    setup = (
        "%cluster"
        if kind == "ipytui"
        else f"import ipyparallel as ipp; rc = ipp.Client({str(client_file)!r}); rc.activate()"
    )
    reply = client.run(setup, 120)
    assert reply["status"] == "ok", reply
    return proc, client


def px_once(client: TextClient, i: int) -> tuple[float, bool]:
    msg_id = client.execute(f"%px print('ok', {i})")
    client.streams[msg_id] = []
    t0 = time.perf_counter()
    done, reply = client.wait_done(msg_id, 60)
    text = "".join(client.streams.pop(msg_id))
    ok = reply["status"] == "ok" and all(f"[stdout:{e}] ok {i}" in text for e in (0, 1))
    return (done - t0) * 1e3, ok


def plain_once(client: TextClient, i: int) -> tuple[float, bool]:
    """A cell without %px, for the kernel's own per-cell cost beside the %px figure."""
    t0 = time.perf_counter()
    done, reply = client.wait_done(client.execute(f"x = {i}"), 60)
    return (done - t0) * 1e3, reply["status"] == "ok"


def cpu_by_pid(procs: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    seconds = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def idle_cpu(root: int, window: float) -> float:
    """CPU seconds the tree under ``root`` used over ``window`` idle seconds (processes
    born in the window count whole; one that ended in it is not known, and left out)."""
    before = cpu_by_pid(tree(psutil.Process(root)))
    time.sleep(window)  # the window measured: nothing runs, the watcher waits for news
    after = cpu_by_pid(tree(psutil.Process(root)))
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def tree_cpu(root: int) -> float:
    """CPU seconds of the tree under ``root`` so far, its reaped children (the restore
    points it discarded) included."""
    total = 0.0
    for proc in tree(psutil.Process(root)):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    """One row per metric: each kind, ipytui's ratios to ipykernel, and correctness."""
    total, reps = args.n * args.reps, args.reps
    print(
        f"cluster: 2 stock engines; {reps} kernels of each kind, {args.n} round trips and "
        f"an idle window of {args.idle:.0f} s each (medians); ipytui-alone joined no cluster"
    )
    print(
        f"{'metric':<34}{'ipytui':>9}{'alone':>9}{'ipykernel':>11}{'ratio':>7}{'alone':>7}"
        "  correct (ipytui / alone / ipykernel)"
    )
    rows = [
        ("%px round trip, median ms", "px_ms", "px_ok", total),
        ("cell x = N (no %px), median ms", "plain_ms", "plain_ok", total),
        ("kernel CPU ms per x = N cell", "plain_cpu_ms", "plain_ok", total),
        ("controller CPU s while idle", "hub_cpu", "idle_ok", reps),
        ("kernel CPU s while idle", "kernel_cpu", "idle_ok", reps),
    ]
    ours, alone, ref = (results[kind] for kind in KINDS)
    for label, key, ok, n in rows:
        a, b, r = (float(res[key]) for res in (ours, alone, ref))
        ratios = "".join(f"{x / r:>7.2f}" if r > 0 else f"{'n/a':>7}" for x in (a, b))
        if key == "px_ms":
            b, ratios, right = float("nan"), ratios[:7] + f"{'n/a':>7}", "n/a"
        else:
            right = f"{alone[ok]}/{n}"
        correct = f"{ours[ok]}/{n} / {right} / {ref[ok]}/{n}"
        print(f"{label:<34}{a:>9.3f}{b:>9.3f}{r:>11.3f}{ratios}  {correct}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30, help="%%px round trips per kernel")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    parser.add_argument("--reps", type=int, default=3, help="kernel starts per kind, alternating")
    args = parser.parse_args()
    install_handlers()
    wd = Workdir()
    cluster, client_file = start_cluster(wd)
    controller = psutil.Process(cluster.controller.pid)
    samples: dict[str, list[tuple[float, bool]]] = {kind: [] for kind in KINDS}
    plain: dict[str, list[tuple[float, bool]]] = {kind: [] for kind in KINDS}
    plain_cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}  # ms per cell
    idle: dict[str, list[tuple[float, float, bool]]] = {kind: [] for kind in KINDS}
    try:
        for rep in range(args.reps):  # alternating which kernel goes first
            for kind in KINDS[:: 1 if rep % 2 == 0 else -1]:
                proc, client = start_kernel(kind, wd, client_file)
                alone = kind == "ipytui-alone"
                if not alone:
                    px_once(client, -1)  # warm: the first %px sets things up on both sides
                    samples[kind] += [px_once(client, i) for i in range(args.n)]
                cpu_before = tree_cpu(proc.pid)
                plain[kind] += [plain_once(client, i) for i in range(args.n)]
                plain_cpu[kind].append((tree_cpu(proc.pid) - cpu_before) * 1e3 / args.n)
                # past the restore point and checkpoint a kernel takes after its last cell
                time.sleep(SETTLE)
                wait_quiet(proc.pid, timeout=args.idle)
                hub_before = cpu_by_pid(tree(controller))
                kernel = idle_cpu(proc.pid, args.idle)
                hub = sum(
                    t - hub_before.get(pid, 0.0) for pid, t in cpu_by_pid(tree(controller)).items()
                )
                reached = plain_once(client, 999)[1] if alone else px_once(client, 999)[1]
                idle[kind].append((hub, kernel, reached))
                client.close()
                kill_tree(proc.pid, grace=5.0)
    finally:
        cluster.stop_cluster_sync()
    results = {
        kind: {
            "px_ms": statistics.median([ms for ms, _ in samples[kind]] or [0.0]),
            "px_ok": sum(ok for _, ok in samples[kind]),
            "plain_ms": statistics.median(ms for ms, _ in plain[kind]),
            "plain_ok": sum(ok for _, ok in plain[kind]),
            "plain_cpu_ms": statistics.median(plain_cpu[kind]),
            "hub_cpu": statistics.median(h for h, _, _ in idle[kind]),
            "kernel_cpu": statistics.median(k for _, k, _ in idle[kind]),
            "idle_ok": sum(ok for _, _, ok in idle[kind]),
        }
        for kind in samples
    }
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
