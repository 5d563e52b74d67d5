"""``python -m ipytui.kernel.provision.keeper NAME CONNECTION_FILE``: hold a
provisioned kernel for ``ipytui --kernel NAME``.

A kernelspec whose kernel a provisioner places (``ipytui-ssh`` on another
host, or any other) cannot be started by running its argv here. This small
detached process does what a Jupyter server does: it starts the kernel with
jupyter_client's kernel manager (Curve keys made when the spec declares
them), which writes CONNECTION_FILE for the UI to attach to, then waits for
the kernel to end (whoever shut it down), lets the provisioner clean up and
exits. So the kernel outlives the UI, as a local one does. SIGTERM or SIGINT
here shut the kernel down.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path


async def keep(name: str, connection_file: Path) -> int:
    """Start kernelspec ``name`` writing ``connection_file``; return when it ended."""
    from jupyter_client.manager import AsyncKernelManager

    connection_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    km = AsyncKernelManager(
        kernel_name=name, connection_file=str(connection_file), transport_encryption="auto"
    )
    # The UI restarts a kernel in place (shutdown_request with restart: true): the
    # spec's --exit-on-restart is for managers that start a new process instead.
    spec = km.kernel_spec
    if spec is not None:
        spec.argv = [arg for arg in spec.argv if arg != "--exit-on-restart"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await km.start_kernel()
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        print(f"ipytui: kernel {name!r} did not start: {exc}", file=sys.stderr, flush=True)
        await km.cleanup_resources()
        connection_file.unlink(missing_ok=True)
        return 1
    print(
        f"ipytui: kernel {name!r} started; connection file {connection_file}",
        file=sys.stderr,
        flush=True,
    )
    ended = asyncio.ensure_future(km.provisioner.wait())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not ended.done():
        await km.shutdown_kernel()
    ended.cancel()
    stopped.cancel()
    await km.cleanup_resources()  # the connection file and the provisioner's leftovers
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m ipytui.kernel.provision.keeper NAME CONNECTION_FILE", file=sys.stderr
        )
        return 2
    return asyncio.run(keep(args[0], Path(args[1])))


if __name__ == "__main__":
    sys.exit(main())
