"""``ipytui``: the command line. Imports stay lazy: start-up time is tracked."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .app import IpytuiApp
    from .config import Config

USAGE_EPILOG = """\
subcommands (each has its own --help):
  ipytui kernel ...            run the kernel (supervisor) itself; --debug logs to stderr
  ipytui engine ...            an ipyparallel engine that survives crashes (as ipengine)
  ipytui kernelspec install    make ipytui a Jupyter kernel
  ipytui kernelspec list       the ipytui kernelspecs installed
  ipytui keys new|authorize|revoke|list|show   Curve keys for remote kernels
  ipytui list                  running and stale kernels (from their lock files)
  ipytui stop ID               shut a kernel down (ID: its id, a unique prefix, or its file)
  ipytui recover [ID]          bring back a kernel that went down uncleanly

keys in the UI: F2 lists them all; Ctrl+Q quits (the kernel keeps running).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipytui",
        description="A crash-proof, multi-client interactive Python in the terminal.",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--existing",
        nargs="?",
        const="",
        metavar="FILE|ID",
        help="attach to a running kernel (a connection file, a kernel id, or the newest)",
    )
    parser.add_argument(
        "--kernel",
        metavar="NAME",
        help="start the installed Jupyter kernelspec NAME (detached) and attach to it",
    )
    parser.add_argument(
        "--ssh",
        metavar="USER@HOST[:PORT]",
        type=_ssh_destination,
        help="reach the kernel through an ssh tunnel (with --existing FILE)",
    )
    parser.add_argument(
        "--cluster",
        nargs="?",
        const="default",
        metavar="new:N|FILE|PROFILE",
        type=_cluster_spec,
        help="start a kernel on an ipyparallel cluster: new:N starts N local engines "
        "(stopped with the kernel); FILE (ipcontroller-client.json) or PROFILE joins a "
        "running one (default: the default profile)",
    )
    parser.add_argument("--theme", help="dark, light, high-contrast or any Textual theme")
    parser.add_argument(
        "--shutdown-on-exit",
        action="store_true",
        help="shut the kernel down when the UI quits (default: it keeps running)",
    )
    parser.add_argument("--config", metavar="PATH", help="config file (default: config dir)")
    return parser


def _ssh_destination(text: str) -> str:
    from ipytui.kernel.client.tunnel import parse_server
    from ipytui.kernel.protocol.connection import ConnectionError_

    try:
        parse_server(text)
    except ConnectionError_ as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cluster_spec(text: str) -> str:
    from ipytui.kernel.protocol.cluster_spec import ClusterSpecError, check_cluster_spec

    try:
        return check_cluster_spec(text)
    except ClusterSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.kernel is not None and args.existing is not None:
        parser.error("--kernel starts a kernel, --existing attaches to one: pick one")
    if args.cluster is not None and (args.existing is not None or args.kernel):
        parser.error("--cluster starts a kernel of its own; in a running one use %cluster connect")
    if args.ssh and args.existing is None:
        parser.error("--ssh needs --existing FILE (the kernel's connection file, as seen from the ssh host)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "kernel":
        from ipytui.kernel.supervisor.main import main as kernel_main

        return kernel_main(argv[1:]) or 0
    if argv and argv[0] == "engine":
        from ipytui.kernel.engine.app import main as engine_main

        return engine_main(argv[1:]) or 0
    if argv and argv[0] == "keys":
        from ipytui.kernel.tools.keys import main as keys_main

        return keys_main(argv[1:]) or 0
    if argv and argv[0] in ("recover", "stop", "list"):
        from ipytui.kernel.tools import manage, recover

        commands = {"recover": recover.main, "stop": manage.stop_main, "list": manage.list_main}
        return commands[argv[0]](argv[1:]) or 0
    if argv and argv[0] == "kernelspec":
        from ipytui.kernel.tools.kernelspec import main as kernelspec_main

        return kernelspec_main(argv[1:]) or 0
    return run_ui(parse_args(argv))


def resolve_connection_file(args: argparse.Namespace) -> Path:
    """The connection file to attach to, starting a kernel unless --existing."""
    return begin_connection(args)()


def begin_connection(args: argparse.Namespace, config: Config | None = None) -> Callable[[], Path]:
    """Find or start the kernel; the returned call waits until it can be attached to.

    A new kernel boots in its own process meanwhile, so the UI's imports
    (a few hundred ms) are paid while it starts, not after. Stale kernels
    are not asked about here: the UI offers them once it is up.
    """
    from ipytui.kernel.protocol.connection import find_connection_file

    if args.existing is not None:
        existing = find_connection_file(args.existing or None)
        return lambda: existing
    if args.kernel:
        from .launch import start_kernelspec

        started = start_kernelspec(args.kernel)
        return lambda: started
    from .launch import spawn_kernel

    cull_after = config.cull_idle_after if config is not None else None
    cluster = {"cluster": args.cluster} if args.cluster is not None else {}
    return spawn_kernel(cull_after=cull_after, **cluster).wait


def load_ui() -> type[IpytuiApp]:
    """Import the app and the kernel client it connects with.

    The garbage collector pauses meanwhile: imports make tens of thousands of
    objects that live as long as the app, so scanning them is wasted start-up
    time. Frozen afterwards, later collections skip them too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        import ipytui.kernel.client.kernel_client  # noqa: F401 - the app connects with these at once
        import ipytui.kernel.supervisor.security  # noqa: F401

        from .app import IpytuiApp
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return IpytuiApp


def probe_images(config: Config) -> None:
    """Let textual-image learn what the terminal draws, before Textual takes the terminal.

    About 0.3 s (numpy for sixel encoding, a graphics query the terminal may
    not answer): run_ui does it while a new kernel boots.
    """
    if config.images == "off":
        return
    from ipytui.widgets.image_output import probe_terminal

    problem = probe_terminal()
    if problem:
        config.warnings.append(problem)
        config.images = "off"


def run_ui(args: argparse.Namespace) -> int:
    from ipytui.kernel.protocol.connection import ConnectionError_

    from .config import load_config
    from .launch import KernelSpecError

    config = load_config(args.config) if args.config else load_config()
    try:
        attachable = begin_connection(args, config)
        app_class = load_ui()
        probe_images(config)  # while a new kernel boots in its own process
        connection_file = attachable()
    except (ConnectionError_, KernelSpecError) as exc:
        print(f"ipytui: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"ipytui: cannot start a kernel: {exc}", file=sys.stderr)
        return 1

    tunnel = None
    try:
        connection = connection_file
        if args.ssh:
            from ipytui.kernel.client.tunnel import open_tunnel
            from ipytui.kernel.protocol.credentials import client_info

            # Before the UI takes the screen: ssh may ask for a password.
            tunnel = open_tunnel(client_info(connection_file), args.ssh)
            connection = tunnel.info
        app = app_class(
            connection,
            config=config,
            theme=args.theme,
            shutdown_on_exit=args.shutdown_on_exit,
            # A kernel of our own was just started: stale ones may be offered in its place.
            offer_recovery=args.existing is None and not args.kernel,
        )
        app.connection_file = str(connection_file)
        result = app.run()
    except ConnectionError_ as exc:
        print(f"ipytui: {exc}", file=sys.stderr)
        return 2
    finally:
        if tunnel is not None:
            tunnel.close()
    if args.kernel and result is not None and result.kernel_shut_down:
        # A Jupyter kernel leaves its connection file to whoever started it.
        connection_file.unlink(missing_ok=True)
    print(goodbye(result, str(connection_file), ssh=args.ssh))
    return app.return_code or 0


def goodbye(result, connection_file: str, ssh: str | None = None) -> str:
    if result is not None and result.kernel_shut_down:
        return "ipytui: kernel shut down."
    via = f" --ssh {ssh}" if ssh else ""
    again = f"ipytui --existing {connection_file}{via}"
    if result is not None and not getattr(result, "kernel_responding", True):
        return ("ipytui: the kernel was not responding (heartbeat lost). If it comes back:\n"
                f"  {again}\n"
                "If it went down, the next `ipytui` offers to recover it (or run `ipytui recover`).")
    return f"ipytui: the kernel is still running. Come back with:\n  {again}"


if __name__ == "__main__":
    sys.exit(main())
