"""``ipytui engine`` / ``python -m ipytui.kernel.engine``: an ipyparallel engine
whose worker is restored from its snapshot when it crashes.

The command line takes ipengine's ways of finding the controller
(``--profile``, ``--profile-dir``, ``--cluster-id``, ``--file``, ``--url``,
$IPP_CONNECTION_INFO), so ipyparallel's launchers can start it in
ipengine's place (see ``launchers``). Other ipengine options (traitlets
style, ``--Some.option=value``) are accepted and ignored, with a log line.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import zmq
from ipytui.kernel.engine.mpi import mpi_rank
from ipytui.kernel.engine.registration import (
    EngineError,
    load_controller,
    profile_dir,
    register,
    unregister,
)
from ipytui.kernel.engine.relay import start_relays
from ipytui.kernel.protocol.connection import (
    new_connection_info,
    write_connection_file,
)
from ipytui.kernel.protocol.engine_identity import ENGINE_ENV, EngineIdentity, write_id_file

log = logging.getLogger("ipytui.engine")

MAX_TASK_BYTES = 1 << 30  # an engine takes scatter/push payloads up to 1 GiB per message
STOP_GRACE = 10.0  # seconds the kernel gets to stop after SIGTERM before it is killed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipytui engine",
        description="An ipyparallel engine run by an ipytui kernel: a crash in a task answers "
        "that task with an error and the engine comes back with its namespace.",
    )
    parser.add_argument("--profile", help="IPython profile name (default: default)")
    parser.add_argument("--profile-dir", help="IPython profile directory")
    parser.add_argument("--cluster-id", default=None, help="the cluster id in the file name")
    parser.add_argument(
        "--file",
        "--url-file",
        dest="file",
        help="the controller's engine connection file (ipcontroller-engine.json)",
    )
    parser.add_argument("--url", help="override the registration URL (tcp://host:port)")
    parser.add_argument("--id", type=int, default=None, help="ask for this engine id")
    parser.add_argument("--mpi", action="store_true", help="ask for the MPI rank as engine id")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the connection file and the registration",
    )
    parser.add_argument(
        "--protection",
        choices=("auto", "cell", "idle", "checkpoint", "off"),
        help="the kernel's crash-protection level (default: auto)",
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--debug", action="store_true", help="log to stderr, the kernel too")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """ipengine's ``--key=value`` options we know; unknown traitlets options are ignored."""
    args, unknown = build_parser().parse_known_args(argv)
    args.ignored = unknown
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s ipytui-engine[%(process)d] %(levelname)s %(message)s",
    )
    if args.ignored:
        log.info("ignored ipengine options: %s", " ".join(args.ignored))
    ctx = zmq.Context.instance()
    try:
        controller = load_controller(
            args.file,
            profile_dir(args.profile, args.profile_dir),
            args.cluster_id,
            args.url,
            args.timeout,
        )
    except EngineError as exc:
        print(f"ipytui engine: {exc}", file=sys.stderr)
        return 2
    private = tempfile.mkdtemp(prefix="ipytui-engine-")
    ident = str(uuid.uuid4())
    # The kernel starts while we register: the controller completes a registration
    # only at its heart monitor's next beat, time the kernel spends importing.
    # Its engine id follows in id_file, written before the relays can pass it a task.
    early = EngineIdentity(
        -1,
        ident,
        mpi_marker=str(Path(private, "mpi-initialized")) if args.mpi else "",
        id_file=str(Path(private, "engine-id.json")),
    )
    kernel_info = new_connection_info(
        ip=f"{private}/kernel", transport="ipc", key=controller.key.decode()
    )
    # The file name is the kernel id: logs and journal sessions are told apart by it.
    connection = write_connection_file(kernel_info, Path(private, f"engine-{ident[:8]}.json"))
    # A stop while the kernel starts is only noted: raised inside Popen, it would leave
    # the kernel unnamed (so unstopped) and end us with a traceback. Once it has started,
    # a stop while registering cleans up too.
    stops: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stops.append(1))
    kernel = _start_kernel(connection, early, args)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        if stops:
            _stopped()
        engine_id, _hb_period = register(ctx, controller, ident, _requested_id(args), args.timeout)
        write_id_file(early.id_file, engine_id)
    except (EngineError, OSError, KeyboardInterrupt) as exc:
        print(f"ipytui engine: {_reason(exc)}", file=sys.stderr)
        _stop(kernel)
        _cleanup(private)
        return 2
    start_relays(controller, replace(early, id=engine_id), kernel_info)
    log.info("engine %d registered (%s); kernel pid %d", engine_id, ident, kernel.pid)
    code = _wait(kernel)
    unregister(ctx, controller, (ident, engine_id))
    _cleanup(private)
    os._exit(code)


def _stopped(*_: object) -> None:
    raise EngineError("stopped (SIGTERM) before the registration completed")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted before the registration completed"
    if isinstance(exc, OSError):
        return f"cannot write the engine id for the kernel: {exc}"
    return str(exc)


def _requested_id(args: argparse.Namespace) -> int | None:
    if args.id is not None or not args.mpi:
        return args.id
    rank = mpi_rank()
    if rank is None:
        log.warning("--mpi outside an MPI job of several processes: the controller picks the id")
    return rank


def _start_kernel(
    connection: Path, identity: EngineIdentity, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """The ipytui kernel (supervisor, which starts the worker) on the private sockets."""
    cmd = [
        sys.executable,
        "-m",
        "ipytui.kernel",
        "-f",
        str(connection),
        "--cull-idle-after",
        "0",
        "--max-message-bytes",
        str(MAX_TASK_BYTES),
        "--log-level",
        args.log_level,
    ]
    if args.protection:
        cmd += ["--protection", args.protection]
    if args.debug:
        cmd.append("--debug")
    env = dict(os.environ, **{ENGINE_ENV: identity.to_env()})
    return subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the kernel's process: end (SIGTERM) when the engine front dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait(kernel: subprocess.Popen[bytes]) -> int:
    """Serve until the kernel ends (a shutdown_request) or we are told to stop; the exit code.

    SIGINT interrupts the running task (ipyparallel's ``signal_engines``);
    SIGTERM stops the kernel, then the engine.
    """
    signal.signal(signal.SIGINT, lambda *_: kernel.send_signal(signal.SIGINT))
    signal.signal(signal.SIGTERM, lambda *_: kernel.terminate())
    while True:
        try:
            code = kernel.wait()
            break
        except KeyboardInterrupt:
            continue
    return 0 if code in (0, -signal.SIGTERM) else 1


def _stop(kernel: subprocess.Popen[bytes]) -> None:
    """End a kernel that has nothing to serve (SIGTERM, then SIGKILL after STOP_GRACE)."""
    kernel.terminate()
    try:
        kernel.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        kernel.kill()
        kernel.wait()


def _cleanup(private: str) -> None:
    """Remove the private dir: the kernel's connection file and IPC sockets."""
    shutil.rmtree(private, ignore_errors=True)
