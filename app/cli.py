"""``ipytui``: the command line. Imports stay lazy: start-up time is tracked."""

from __future__ import annotations

import argparse
import sys

USAGE_EPILOG = """\
subcommands:
  ipytui kernel ...            run the kernel (supervisor) itself
  ipytui kernelspec install    make ipytui a Jupyter kernel
  ipytui keys new|authorize|list|revoke   Curve keys for remote kernels
  ipytui list                  running and stale kernels (from their lock files)
  ipytui stop ID               shut a kernel down
  ipytui recover [ID]          bring back a kernel that went down uncleanly
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
    parser.add_argument("--theme", help="dark, light, high-contrast or any Textual theme")
    parser.add_argument(
        "--shutdown-on-exit",
        action="store_true",
        help="shut the kernel down when the UI quits (default: it keeps running)",
    )
    parser.add_argument("--config", metavar="PATH", help="config file (default: config dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "kernel":
        from ipytui.kernel.__main__ import main as kernel_main

        return kernel_main(argv[1:]) or 0
    if argv and argv[0] == "keys":
        from ipytui.kernel.keys import main as keys_main

        return keys_main(argv[1:]) or 0
    if argv and argv[0] in ("recover", "stop", "list"):
        from ipytui.kernel import manage, recover

        commands = {"recover": recover.main, "stop": manage.stop_main, "list": manage.list_main}
        return commands[argv[0]](argv[1:]) or 0
    if argv and argv[0] == "kernelspec":
        from ipytui.kernel.kernelspec import main as kernelspec_main

        return kernelspec_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return run_ui(args)


def run_ui(args: argparse.Namespace) -> int:
    from ipytui.kernel.connection import ConnectionError_, find_connection_file

    if args.existing is not None:
        try:
            connection_file = find_connection_file(args.existing or None)
        except ConnectionError_ as exc:
            print(f"ipytui: {exc}", file=sys.stderr)
            return 2
    else:
        from .launch import start_kernel

        try:
            connection_file = start_kernel()
        except (OSError, RuntimeError) as exc:
            print(f"ipytui: cannot start a kernel: {exc}", file=sys.stderr)
            return 1

    from .app import IpytuiApp
    from .config import load_config

    config = load_config(args.config) if args.config else load_config()
    try:
        app = IpytuiApp(
            connection_file,
            config=config,
            theme=args.theme,
            shutdown_on_exit=args.shutdown_on_exit,
        )
    except ConnectionError_ as exc:
        print(f"ipytui: {exc}", file=sys.stderr)
        return 2
    result = app.run()
    print(goodbye(result, str(connection_file)))
    return app.return_code or 0


def goodbye(result, connection_file: str) -> str:
    if result is not None and result.kernel_shut_down:
        return "ipytui: kernel shut down."
    return f"ipytui: the kernel is still running. Come back with:\n  ipytui --existing {connection_file}"


if __name__ == "__main__":
    sys.exit(main())
