"""``python -m ipytui.kernel``: start a kernel (supervisor + worker) on a connection file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ipytui.kernel.protocol.atomic import disk_reason
from ipytui.kernel.protocol.connection import (
    ConnectionError_,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)

if TYPE_CHECKING:
    from ipytui.kernel.protocol.connection import ConnectionInfo
    from ipytui.kernel.protocol.protection_settings import ProtectionSettings
    from ipytui.kernel.supervisor.security import ServerSecurity


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipytui kernel",
                                     description="Run an ipytui kernel (supervisor and worker).")
    parser.add_argument("-f", "--connection-file", help="Jupyter connection file (read, or written if missing)")
    parser.add_argument("--ip", default=None,
                        help="address to bind (default: loopback; 0.0.0.0 with --remote)")
    parser.add_argument("--transport", choices=("tcp", "ipc"), default="tcp")
    parser.add_argument("--port-base", type=int, default=None,
                        help="fixed ports N..N+4, in this order: shell, iopub, stdin, control, hb")
    parser.add_argument("--no-snapshots", action="store_true", help="switch fork() snapshots off")
    parser.add_argument("--protection", choices=("auto", "cell", "idle", "checkpoint", "off"),
                        help="crash-protection level (default: [kernel] protection in "
                             "config.toml, else auto); see docs/protection.md")
    parser.add_argument("--undo-depth", type=int, help="cells %%undo can take back (default 3)")
    parser.add_argument("--snapshot-budget", metavar="SIZE",
                        help="memory the kept restore points may hold: 2G, 512M, 25%% (default 25%%)")
    parser.add_argument("--copy-limit", metavar="SIZE",
                        help="auto moves to the idle level when a cell copies this much for its "
                             "restore point (default 64M)")
    parser.add_argument("--idle-seconds", type=float,
                        help="idle level: take a restore point after this long idle (default 2)")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="end the worker (and restore) when it and its restore points pass "
                             "this: 4G, 512M, 80%% of physical memory (default 80%%)")
    parser.add_argument("--spill-threshold", metavar="SIZE",
                        help="a restore point writes its buffers of this size or more to disk "
                             "and drops them from RAM: 128M (default), or off")
    parser.add_argument("--restore-from", help="start from this checkpoint file")
    parser.add_argument("--exit-on-restart", action="store_true",
                        help="exit on shutdown_request(restart=true), as Jupyter kernel managers "
                             "expect (default: restart the worker in place, same process)")
    parser.add_argument("--cull-idle-after", type=_seconds, default=None, metavar="SECONDS",
                        help="with no client for this long, write a checkpoint and stop (recoverable "
                             "with `ipytui recover`); 0 never (default: 4 hours)")
    parser.add_argument("--cluster", metavar="new:N|FILE|PROFILE", type=_cluster_spec,
                        help="start (new:N engines, stopped with the kernel) or join an "
                             "ipyparallel cluster (its ipcontroller-client.json, or a profile)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback address without encryption")
    parser.add_argument("--encrypt", action="store_true",
                        help="CurveZMQ with the server keys in the connection file (as Jupyter's "
                             "transport_encryption); any client holding the file may connect")
    parser.add_argument("--remote", action="store_true",
                        help="serve on the network with CurveZMQ, letting in only keys on the "
                             "allow-list (`ipytui keys`); also writes a share file for remote users")
    parser.add_argument("--advertise", metavar="HOST",
                        help="host name remote users connect to, for the share file (default: this host)")
    parser.add_argument("--share-file", help="where --remote writes the share file "
                                             "(default: share-<connection file name> next to it)")
    parser.add_argument("--authorized-keys", help="the allow-list file (default: in the config dir)")
    parser.add_argument("--owns-connection-file", action="store_true",
                        help="remove the connection file at shutdown (or after recovery), as when "
                             "the kernel writes it itself; for launchers that write it up front")
    parser.add_argument("--max-message-bytes", type=_positive_int, default=None, metavar="N",
                        help="largest request accepted, in bytes (default: 64 MiB); a larger "
                             "one gets an error reply")
    parser.add_argument("--replay-window", type=_positive_float, default=None, metavar="SECONDS",
                        help="accept a message only if its header date is within this many "
                             "seconds of the kernel's clock, and each only once (default: 600)")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--debug", action="store_true",
                        help="log to stderr (--log-level DEBUG for everything); without it the log "
                             "goes to logs/kernel-ID.log in the data dir, never a client's terminal")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ip is None:
        args.ip = "0.0.0.0" if args.remote else "127.0.0.1"
    try:
        settings = _settings(args)
    except ValueError as exc:  # a bad flag stops the start before anything is written
        print(f"ipytui kernel: {exc}", file=sys.stderr)
        return 2
    existed = bool(args.connection_file) and Path(args.connection_file).exists()
    try:
        path, info, owns = _connection(args)
    except ConnectionError_ as exc:
        print(f"ipytui kernel: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk: nothing is half-written (write_atomic)
        print(f"ipytui kernel: cannot write the connection file: {disk_reason(exc)}",
              file=sys.stderr)
        return 2
    refusal = _refusal(args, path, info)
    if refusal:
        print(f"ipytui kernel: {refusal}", file=sys.stderr)
        if not existed:
            path.unlink(missing_ok=True)
        return 2
    _setup_logging(args, path)
    from ipytui.kernel.supervisor.loop import Supervisor
    from ipytui.kernel.supervisor.security import ServerSecurity

    authorized = Path(args.authorized_keys) if args.authorized_keys else None
    limits = {"max_message_bytes": args.max_message_bytes} if args.max_message_bytes else {}
    security = ServerSecurity.for_kernel(info, remote=args.remote, authorized_keys=authorized, **limits)
    if args.replay_window:
        limits["replay_window"] = args.replay_window
    from ipytui.kernel.protocol.spill_files import sweep_spills
    from ipytui.kernel.supervisor.culling import DEFAULT_CULL_AFTER

    # --exit-on-restart is the kernelspec's flag: a Jupyter kernel manager launched us.
    sup = Supervisor(info, path, snapshots=not args.no_snapshots, owns_connection_file=owns,
                     restore_from=args.restore_from, security=security,
                     exit_on_restart=args.exit_on_restart,
                     launched_by="manager" if args.exit_on_restart else "user",
                     cull_after=DEFAULT_CULL_AFTER if args.cull_idle_after is None else args.cull_idle_after,
                     settings=settings, **limits)
    from ipytui.kernel.supervisor.cluster_owner import ClusterOwner

    sup.cluster = ClusterOwner(args.cluster)
    sweep_spills(sup.checkpoint_path.parent)  # of restore points killed with their kernel
    sup.bind()
    if owns:
        print(f"ipytui kernel: connection file {path}", file=sys.stderr, flush=True)
    share = _share(args, path, info, security) if args.remote else None
    try:
        sup.run()
    finally:
        sup.cluster.stop()  # a cluster the kernel started ends with it
        if share is not None and owns:
            share.unlink(missing_ok=True)
        _drop_empty_log()
    return 0


def _cluster_spec(text: str) -> str:
    """A ``--cluster`` value that names a cluster (argparse type)."""
    from ipytui.kernel.protocol.cluster_spec import ClusterSpecError, check_cluster_spec

    try:
        return check_cluster_spec(text)
    except ClusterSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    """A non-negative number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("seconds must be 0 or more")
    return value


def _drop_empty_log() -> None:
    """A kernel that had nothing to log leaves no log file behind."""
    import os

    from ipytui.kernel.protocol.paths import LOG_ENV

    log_file = os.environ.get(LOG_ENV)
    try:
        if log_file and os.path.getsize(log_file) == 0:
            os.unlink(log_file)
    except OSError:
        pass


def _setup_logging(args: argparse.Namespace, path: Path) -> None:
    """Log to stderr with --debug, else to this kernel's log file (the worker follows
    the same choice through the environment)."""
    import os

    from ipytui.kernel.protocol.paths import LOG_ENV, kernel_log_path
    from ipytui.kernel.protocol.procs import kernel_id_from

    level = args.log_level.upper()
    fmt = "%(asctime)s ipytui-kernel[%(process)d] %(levelname)s %(message)s"
    if args.debug:
        os.environ.pop(LOG_ENV, None)
        logging.basicConfig(level=level, format=fmt)
        return
    try:
        log_file = kernel_log_path(kernel_id_from(path))
        logging.basicConfig(level=level, format=fmt, filename=log_file)
    except OSError as exc:  # an unwritable data dir costs the log, not the kernel
        logging.basicConfig(level=level, format=fmt, handlers=[logging.NullHandler()])
        print(f"ipytui kernel: no log file ({exc}); use --debug to log to stderr", file=sys.stderr)
        return
    logging.captureWarnings(True)  # Python's warnings too: stderr is the client's terminal
    os.environ[LOG_ENV] = str(log_file)
def _settings(args: argparse.Namespace) -> ProtectionSettings:
    """config.toml's [kernel] table, overridden by the flags; a bad flag raises ValueError."""
    from ipytui.kernel.protocol.protection_settings import load_settings

    settings = load_settings()
    for warning in settings.warnings:
        print(f"ipytui kernel: {warning}", file=sys.stderr)
    flags = {"protection": args.protection, "undo_depth": args.undo_depth,
             "snapshot_budget": args.snapshot_budget, "memory_limit": args.memory_limit,
             "copy_limit": args.copy_limit, "idle_seconds": args.idle_seconds,
             "spill_threshold": args.spill_threshold}
    for key, value in flags.items():
        if value is not None:
            try:
                settings.set(key, value)
            except ValueError as exc:
                raise ValueError(f"--{key.replace('_', '-')}: {exc}") from None
    if args.no_snapshots:
        settings.protection = "off"
    return settings


def _refusal(args: argparse.Namespace, path: Path, info: ConnectionInfo) -> str:
    """Why this kernel must not start as asked, or ""."""
    if (args.encrypt or args.remote) and not info.curve_secretkey:
        return (f"{path} holds no Curve server keys; start without -f, or with a new file "
                "name, to get a fresh encrypted connection file")
    if not info.is_loopback and not info.curve_secretkey and not args.insecure:
        return (f"refusing to serve {info.ip} without encryption; use --encrypt or --remote, "
                "or --insecure to do it anyway")
    return ""


def _share(args: argparse.Namespace, path: Path, info: ConnectionInfo,
           security: ServerSecurity) -> Path:
    """Write the file remote users connect with: no server secret in it."""
    import socket

    from ipytui.kernel.protocol.credentials import share_file_path, write_shared_file

    host = args.advertise or (info.ip if info.ip not in ("0.0.0.0", "*", "", "::") else socket.getfqdn())
    share = write_shared_file(info, host, Path(args.share_file) if args.share_file else share_file_path(path))
    print(f"ipytui kernel: share file for remote users {share}", file=sys.stderr)
    allow = security.allow_list
    if allow is not None and not len(allow):
        print(f"ipytui kernel: the allow-list {allow.path} is empty; add users with "
              "`ipytui keys authorize KEY --name NAME`", file=sys.stderr)
    sys.stderr.flush()
    return share


def _connection(args: argparse.Namespace):
    """Read the given connection file, or make one (and say we own it)."""
    if args.connection_file and Path(args.connection_file).exists():
        return (Path(args.connection_file), read_connection_file(args.connection_file),
                args.owns_connection_file)
    info = new_connection_info(ip=args.ip, transport=args.transport, port_base=args.port_base)
    if args.encrypt or args.remote:
        from ipytui.kernel.protocol.credentials import add_server_keys

        add_server_keys(info)
    path = write_connection_file(info, args.connection_file)
    return path, info, args.connection_file is None or args.owns_connection_file


if __name__ == "__main__":
    sys.exit(main())
