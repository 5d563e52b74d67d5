"""Start-up and cell round trip of a kernel placed on another host by the
``ipytui-ssh`` provisioner, next to local kernels, in one run.

The other host is a network namespace running its own sshd (the test
helpers' ``remote_host``; needs root, iproute2 and OpenSSH). Every kernel is
started and driven by jupyter_client (``KernelManager``,
``BlockingKernelClient``), alternating the order per repetition:

- ``ipykernel``: the reference, local (LocalProvisioner);
- ``ipytui``: ipytui's kernelspec, local;
- ``ipytui-ssh``: ipytui over ssh in the namespace, Curve on.

Every manager asks for ``transport_encryption="auto"``: both ipytui specs
declare Curve, so both ipytui kernels run encrypted; ipykernel's spec
declares none and runs in plaintext. Start = ``start_kernel()`` until
``wait_for_ready()``; round trip = one
``execute_interactive("print(6 * 7)")``. A sample counts only if the reply is
ok and the output is ``42``; misses are counted beside the times. Ratios are
medians against ipykernel's.

    sudo python benchmarks/remote_bench.py --reps 5 --cells 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

KINDS = ("ipykernel", "ipytui", "ipytui-ssh")


def install_specs(root: Path, host: Any) -> None:
    """The two ipytui specs (local and over ssh) under root; Jupyter finds them there."""
    from ipytui.kernel.tools import kernelspec

    env = {"IPYTUI_DATA_DIR": str(root / "data"), "IPYTHONDIR": str(root / "ipython")}
    kernelspec.install("ipytui", prefix=str(root), interrupt_mode="message", env=env)
    remote_env = {**env, "JUPYTER_RUNTIME_DIR": str(root / "remote-runtime")}
    provisioner = kernelspec.ssh_provisioner(f"root@{host.address}", host.ssh_args)
    kernelspec.install(
        "ipytui-ssh",
        prefix=str(root),
        interrupt_mode="message",
        env=remote_env,
        provisioner=provisioner,
    )
    os.environ["JUPYTER_PATH"] = str(root / "share" / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")


def one_kernel(kind: str, cells: int) -> tuple[float, list[float], int]:
    """(start seconds, round-trip seconds of the correct cells, misses)."""
    from jupyter_client.manager import KernelManager

    name = "python3" if kind == "ipykernel" else kind
    km = KernelManager(kernel_name=name, transport_encryption="auto")
    began = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        start = time.perf_counter() - began
        trips, misses = [], 0
        for _ in range(cells):
            out: list[str] = []
            t0 = time.perf_counter()
            reply = kc.execute_interactive(
                "print(6 * 7)",
                timeout=60,
                output_hook=lambda m, out=out: out.append(m["content"].get("text", "")),
            )
            elapsed = time.perf_counter() - t0
            if reply["content"]["status"] == "ok" and "".join(out) == "42\n":
                trips.append(elapsed)
            else:
                misses += 1
        return start, trips, misses
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cells", type=int, default=50)
    args = parser.parse_args()
    from netns_support import remote_host

    with (
        tempfile.TemporaryDirectory(prefix="ipytui-remote-bench-") as tmp,
        remote_host(Path(tmp)) as host,
    ):
        deadline = time.monotonic() + 60
        while host.ssh("true").returncode != 0:
            if time.monotonic() > deadline:
                print("sshd in the namespace does not answer", file=sys.stderr)
                return 1
            time.sleep(0.1)
        install_specs(Path(tmp), host)
        for kind in KINDS:  # untimed: caches warm, as for every kernel
            one_kernel(kind, 1)
        starts: dict[str, list[float]] = {k: [] for k in KINDS}
        trips: dict[str, list[float]] = {k: [] for k in KINDS}
        misses = dict.fromkeys(KINDS, 0)
        for rep in range(args.reps):
            order = KINDS if rep % 2 == 0 else KINDS[::-1]
            for kind in order:
                start, rtts, missed = one_kernel(kind, args.cells)
                starts[kind].append(start)
                trips[kind].extend(rtts)
                misses[kind] += missed
    report(starts, trips, misses, args.reps * args.cells)
    return 0


def report(
    starts: dict[str, list[float]],
    trips: dict[str, list[float]],
    misses: dict[str, int],
    cells: int,
) -> None:
    base_start = statistics.median(starts["ipykernel"])
    base_trip = statistics.median(trips["ipykernel"]) if trips["ipykernel"] else float("nan")
    print(
        f"{'kernel':<12} {'start med':>10} {'ratio':>6} {'trip med':>10} {'trip p99':>10}"
        f" {'ratio':>6} {'correct':>10}"
    )
    for kind in KINDS:
        start = statistics.median(starts[kind])
        rtts = sorted(trips[kind])
        trip = statistics.median(rtts) if rtts else float("nan")
        p99 = rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))] if rtts else float("nan")
        print(
            f"{kind:<12} {start * 1e3:>8.0f}ms {start / base_start:>6.2f} {trip * 1e3:>8.2f}ms"
            f" {p99 * 1e3:>8.2f}ms {trip / base_trip:>6.2f} {cells - misses[kind]:>5}/{cells}"
        )


if __name__ == "__main__":
    sys.exit(main())
