"""``ipytui kernelspec install|list``: make ipytui a kernel every Jupyter tool can start.

jupyter_client is not a runtime dependency: when it is importable its
``KernelSpecManager`` installs the spec (so the spec lands exactly where
Jupyter looks); otherwise the same directories are computed here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_NAME = "ipytui"
DISPLAY_NAME = "Python 3 (ipytui)"


def debugpy_available() -> bool:
    """The worker's debugger runs on debugpy: only then may the spec offer it."""
    import importlib.util

    return importlib.util.find_spec("debugpy") is not None


def kernel_json(display_name: str = DISPLAY_NAME, interrupt_mode: str = "signal",
                env: dict[str, str] | None = None,
                kernel_flags: list[str] | None = None,
                provisioner: dict[str, Any] | None = None,
                python: str | None = None) -> dict[str, Any]:
    """The kernel.json contents; ``{connection_file}`` is filled in by the launcher.

    ``provisioner``: a ``metadata.kernel_provisioner`` entry (``ssh_provisioner``);
    ``python``: the interpreter on the kernel's host (default: this one).
    """
    spec: dict[str, Any] = {
        # A Jupyter kernel manager restarts by starting a new process, so the
        # supervisor exits on a restart request instead of restarting in place.
        "argv": [python or sys.executable, "-m", "ipytui.kernel", "--exit-on-restart",
                 *(kernel_flags or []), "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": interrupt_mode,
        # JupyterLab enables its debugger panel from this flag (kernel_info says the same).
        "metadata": {"supported_encryption": ["curve"], "debugger": debugpy_available()},
    }
    if env:
        spec["env"] = dict(env)
    if provisioner:
        spec["metadata"]["kernel_provisioner"] = provisioner
    return spec


def ssh_provisioner(host: str, ssh_args: list[str] | None = None,
                    kernel_ip: str | None = None) -> dict[str, Any]:
    """The ``kernel_provisioner`` entry that places the kernel on ``host`` over ssh."""
    config: dict[str, Any] = {"host": host, "ssh_args": list(ssh_args or [])}
    if kernel_ip:
        config["kernel_ip"] = kernel_ip
    return {"provisioner_name": "ipytui-ssh", "config": config}


# -- where specs live (the fallback when jupyter_client is absent) -----------
def user_data_dir() -> Path:
    """Jupyter's per-user data dir, as jupyter_core computes it."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"]).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Jupyter"
    if os.name == "nt":
        appdata = os.environ.get("APPDATA")
        return Path(appdata) / "jupyter" if appdata else home / ".jupyter" / "data"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else home / ".local" / "share") / "jupyter"


def system_data_dir() -> Path:
    if os.name == "nt":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "jupyter"
    return Path("/usr/local/share/jupyter")


def destination(name: str, user: bool = False, prefix: str | None = None) -> Path:
    """Where a spec called ``name`` goes for --user, --prefix P or system-wide."""
    if user:
        return user_data_dir() / "kernels" / name
    if prefix:
        return Path(prefix).absolute() / "share" / "jupyter" / "kernels" / name
    return system_data_dir() / "kernels" / name


# -- install ------------------------------------------------------------------
def install(name: str = DEFAULT_NAME, *, user: bool = False, prefix: str | None = None,
            display_name: str = DISPLAY_NAME, interrupt_mode: str = "signal",
            env: dict[str, str] | None = None, kernel_flags: list[str] | None = None,
            provisioner: dict[str, Any] | None = None, python: str | None = None) -> Path:
    """Install (or replace) the kernelspec; returns the directory it was written to."""
    spec = kernel_json(display_name, interrupt_mode, env, kernel_flags, provisioner, python)
    with tempfile.TemporaryDirectory(prefix="ipytui-kernelspec-") as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        # Copies keep the mode: a system-wide spec must be readable by everyone.
        os.chmod(Path(tmp) / "kernel.json", 0o644)
        os.chmod(tmp, 0o755)
        try:
            from jupyter_client.kernelspec import KernelSpecManager
        except ImportError:
            return _copy_spec(Path(tmp), destination(name, user, prefix))
        return Path(KernelSpecManager().install_kernel_spec(tmp, name, user=user, prefix=prefix))


def _copy_spec(source: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest)
    return dest


# -- list ---------------------------------------------------------------------
def find_specs() -> dict[str, Path]:
    """Every installed kernelspec whose argv runs ipytui, by name."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        found = {k: Path(v) for k, v in KernelSpecManager().find_kernel_specs().items()}
    except ImportError:
        found = {}
        dirs = [Path(p) for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        dirs += [user_data_dir(), Path(sys.prefix) / "share" / "jupyter", system_data_dir()]
        for base in dirs:
            kernels = base / "kernels"
            if kernels.is_dir():
                for d in sorted(kernels.iterdir()):
                    found.setdefault(d.name, d)
    result = {}
    for name, path in found.items():
        try:
            argv = json.loads((path / "kernel.json").read_text()).get("argv", [])
        except (OSError, ValueError, AttributeError):
            continue
        if "ipytui.kernel" in argv:
            result[name] = path
    return result


# -- command line -------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipytui kernelspec",
                                     description="Install ipytui as a Jupyter kernel.")
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install the kernelspec (default: system-wide)")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user only")
    where.add_argument("--sys-prefix", action="store_true",
                       help=f"install into this Python's prefix ({sys.prefix})")
    where.add_argument("--prefix", metavar="P", help="install into P/share/jupyter/kernels")
    inst.add_argument("--name", default=DEFAULT_NAME, help=f"kernelspec name (default: {DEFAULT_NAME})")
    inst.add_argument("--display-name", default=DISPLAY_NAME, help="name shown in Jupyter's menus")
    inst.add_argument("--interrupt-mode", choices=("signal", "message"), default=None,
                      help="how Jupyter interrupts the kernel (default: signal; with --ssh: message)")
    inst.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                      help="set an environment variable for the kernel (repeatable)")
    inst.add_argument("--memory-limit", metavar="SIZE",
                      help="the kernel's memory guard: 4G, 512M, 80%% of physical memory")
    inst.add_argument("--protection", choices=("auto", "cell", "idle", "checkpoint", "off"),
                      help="the kernel's crash-protection level (default: auto)")
    remote = inst.add_argument_group("remote placement (the ipytui-ssh kernel provisioner)")
    remote.add_argument("--ssh", metavar="[USER@]HOST",
                        help="start the kernel on HOST over ssh (ipytui installed there)")
    remote.add_argument("--ssh-arg", action="append", default=[], metavar="ARG",
                        help="an extra ssh argument, e.g. --ssh-arg=-p --ssh-arg=2222 (repeatable)")
    remote.add_argument("--kernel-ip", metavar="IP",
                        help="address the kernel binds on HOST and clients connect to "
                             "(default: HOST)")
    remote.add_argument("--python", metavar="PATH",
                        help="the Python that runs ipytui on the kernel's host "
                             f"(default: {sys.executable})")
    sub.add_parser("list", help="list installed ipytui kernelspecs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        specs = find_specs()
        if not specs:
            print("no ipytui kernelspec installed; run: ipytui kernelspec install --user")
        for name, path in sorted(specs.items()):
            print(f"  {name:<16} {path}")
        return 0
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"ipytui kernelspec: --env wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        env[key] = value
    flags: list[str] = []
    if args.memory_limit is not None:
        from ipytui.kernel.protocol.sizes import SizeError, parse_size

        try:
            parse_size(args.memory_limit, "--memory-limit")
        except SizeError as exc:
            print(f"ipytui kernelspec: {exc}", file=sys.stderr)
            return 2
        flags += ["--memory-limit", args.memory_limit]  # as written: 80% follows the machine
    if args.protection is not None:
        flags += ["--protection", args.protection]
    if (args.ssh_arg or args.kernel_ip) and not args.ssh:
        print("ipytui kernelspec: --ssh-arg and --kernel-ip need --ssh HOST", file=sys.stderr)
        return 2
    provisioner = ssh_provisioner(args.ssh, args.ssh_arg, args.kernel_ip) if args.ssh else None
    # A remote kernel is interrupted by a control message: no signal crosses hosts.
    interrupt = args.interrupt_mode or ("message" if args.ssh else "signal")
    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        path = install(args.name, user=args.user, prefix=prefix, display_name=args.display_name,
                       interrupt_mode=interrupt, env=env, kernel_flags=flags,
                       provisioner=provisioner, python=args.python)
    except PermissionError as exc:
        print(f"ipytui kernelspec: {exc}\n  (use --user to install for yourself only)",
              file=sys.stderr)
        return 1
    print(f"Installed kernelspec {args.name} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
