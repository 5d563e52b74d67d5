"""``python -m ipytui.kernel``: start a kernel (supervisor + worker) on a connection file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .connection import (
    ConnectionError_,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipytui kernel",
                                     description="Run an ipytui kernel (supervisor and worker).")
    parser.add_argument("-f", "--connection-file", help="Jupyter connection file (read, or written if missing)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--transport", choices=("tcp", "ipc"), default="tcp")
    parser.add_argument("--port-base", type=int, default=None,
                        help="put shell, iopub, stdin, control, hb on N..N+4")
    parser.add_argument("--no-snapshots", action="store_true", help="switch fork() snapshots off")
    parser.add_argument("--restore-from", help="start from this checkpoint file")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback address without encryption")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s ipytui-kernel[%(process)d] %(levelname)s %(message)s")
    try:
        path, info, owns = _connection(args)
    except ConnectionError_ as exc:
        print(f"ipytui kernel: {exc}", file=sys.stderr)
        return 2
    if not info.is_loopback and not info.encrypted and not args.insecure:
        print(f"ipytui kernel: refusing to serve {info.ip} without encryption; "
              "use --insecure to do it anyway", file=sys.stderr)
        return 2
    from .supervisor import Supervisor

    sup = Supervisor(info, path, snapshots=not args.no_snapshots, owns_connection_file=owns,
                     restore_from=args.restore_from)
    sup.bind()
    if owns:
        print(f"ipytui kernel: connection file {path}", file=sys.stderr, flush=True)
    sup.run()
    return 0


def _connection(args: argparse.Namespace):
    """Read the given connection file, or make one (and say we own it)."""
    if args.connection_file and Path(args.connection_file).exists():
        return Path(args.connection_file), read_connection_file(args.connection_file), False
    info = new_connection_info(ip=args.ip, transport=args.transport, port_base=args.port_base)
    path = write_connection_file(info, args.connection_file)
    return path, info, args.connection_file is None


if __name__ == "__main__":
    sys.exit(main())
