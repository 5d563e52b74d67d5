"""CurveZMQ keys: the user's client keypair and a kernel's allow-list (``ipytui keys``).

The client keypair lives in the config dir as a ZeroMQ certificate
(``client.key_secret``, mode 0600, readable by ``zmq.auth.load_certificate``)
with its public half in ``client.key``. The allow-list is
``authorized_keys`` in the config dir: one ``<z85-public-key> <name>`` a
line, ``#`` comments. The name is what other users see for that key.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from .paths import config_dir

CLIENT_SECRET_FILE = "client.key_secret"
CLIENT_PUBLIC_FILE = "client.key"
AUTHORIZED_KEYS_FILE = "authorized_keys"
MAX_NAME = 64


class KeyError_(ValueError):
    """A key, name or key file that cannot be used; the text says why."""


@dataclass(frozen=True)
class KeyPair:
    """A Curve keypair, Z85 text; ``name`` is the owner's chosen display name."""

    public: str
    secret: str
    name: str = ""


def new_keypair(name: str = "") -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public.decode("ascii"), secret.decode("ascii"), name)


def is_key(text: str) -> bool:
    """True for a 40-character Z85 Curve key."""
    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, KeyError, UnicodeEncodeError, IndexError):
        return False


def check_name(name: str) -> str:
    """A display name: 1..64 printable characters, no leading/trailing space."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise KeyError_(f"a key name must be 1..{MAX_NAME} printable characters, not {name!r}")
    return name


def default_name() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


# -- the user's client keypair ------------------------------------------------
def client_key_path() -> Path:
    return config_dir() / CLIENT_SECRET_FILE


def _write_private(path: Path, text: str) -> None:
    """Write a file atomically, mode 0600 from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def _certificate(pair: KeyPair, secret: bool) -> str:
    kind = "**Secret**" if secret else "Public"
    lines = [f"#   ZeroMQ CURVE {kind} Certificate (ipytui)", "", "metadata"]
    if pair.name:
        lines.append(f'    name = "{pair.name}"')
    lines += ["curve", f'    public-key = "{pair.public}"']
    if secret:
        lines.append(f'    secret-key = "{pair.secret}"')
    return "\n".join(lines) + "\n"


def write_keypair(pair: KeyPair, path: Path) -> None:
    """The secret certificate at ``path``, the public one next to it (``.key``)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, _certificate(pair, secret=True))
    _write_private(path.with_suffix(".key"), _certificate(pair, secret=False))


def read_keypair(path: Path) -> KeyPair:
    """Load a secret certificate, or raise KeyError_."""
    import zmq.auth  # only for key files: the UI's start does not pay for it

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read key file {path}: {exc}") from None
    if not secret:
        raise KeyError_(f"{path} holds no secret key")
    pair = KeyPair(public.decode("ascii"), secret.decode("ascii"), _cert_name(path))
    if not (is_key(pair.public) and is_key(pair.secret)):
        raise KeyError_(f"{path} does not hold valid Curve keys")
    if zmq.curve_public(pair.secret.encode()).decode() != pair.public:
        raise KeyError_(f"{path}: the public key does not belong to the secret key")
    return pair


def _cert_name(path: Path) -> str:
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "name":
            return value.strip().strip("\"'")
    return ""


def load_client_keypair() -> KeyPair | None:
    """The user's client keypair, or None if ``ipytui keys new`` was never run."""
    path = client_key_path()
    return read_keypair(path) if path.exists() else None


# -- the allow-list -----------------------------------------------------------
def authorized_keys_path() -> Path:
    return config_dir() / AUTHORIZED_KEYS_FILE


def parse_authorized_keys(text: str) -> tuple[dict[str, str], list[str]]:
    """``{public_key: name}`` and a list of complaints about lines skipped."""
    keys: dict[str, str] = {}
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):  # no Z85 key starts with "#" (index 84 > 82)
            continue
        key, _, name = line.partition(" ")
        try:
            if not is_key(key):
                raise KeyError_(f"{key[:12]!r}... is not a Z85 Curve public key")
            keys[key] = check_name(name)
        except KeyError_ as exc:
            problems.append(f"line {n}: {exc}")
    return keys, problems


def read_authorized_keys(path: Path | None = None) -> dict[str, str]:
    """The allow-list as ``{public_key: name}``; a missing file is an empty list."""
    path = path or authorized_keys_path()
    try:
        return parse_authorized_keys(path.read_text())[0]
    except FileNotFoundError:
        return {}


def _write_authorized(keys: dict[str, str], path: Path) -> None:
    header = "# ipytui allow-list: <z85-public-key> <name>; see `ipytui keys --help`\n"
    _write_private(path, header + "".join(f"{k} {v}\n" for k, v in keys.items()))


def authorize(key: str, name: str, path: Path | None = None) -> None:
    """Add (or rename) a client public key on the allow-list."""
    if not is_key(key):
        raise KeyError_(f"{key!r} is not a Z85 Curve public key (40 characters)")
    path = path or authorized_keys_path()
    keys = read_authorized_keys(path)
    keys[key] = check_name(name)
    _write_authorized(keys, path)


def revoke(key_or_name: str, path: Path | None = None) -> int:
    """Remove every entry with this key or name; returns how many went."""
    path = path or authorized_keys_path()
    keys = read_authorized_keys(path)
    kept = {k: v for k, v in keys.items() if key_or_name not in (k, v)}
    if len(kept) != len(keys):
        _write_authorized(kept, path)
    return len(keys) - len(kept)


def key_from_argument(text: str) -> tuple[str, str]:
    """A public key given as itself, a ``.key``/``.key_secret`` file or a line file.

    Returns (key, name found in the file or "").
    """
    if is_key(text):
        return text, ""
    path = Path(text).expanduser()
    if not path.is_file():
        raise KeyError_(f"{text!r} is neither a public key nor a file")
    body = path.read_text(errors="replace")
    keys, _ = parse_authorized_keys(body)
    if len(keys) == 1:
        return next(iter(keys.items()))
    import zmq.auth

    try:
        public, _ = zmq.auth.load_certificate(path)
    except ValueError:
        raise KeyError_(f"no public key in {path}") from None
    if not is_key(public.decode("ascii", "replace")):
        raise KeyError_(f"no valid public key in {path}")
    return public.decode("ascii"), _cert_name(path)


# -- the command line ---------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipytui keys", description=(
        "Curve keys for remote kernels. A user makes a keypair with `new` and sends the "
        "printed line to the kernel's owner, who adds it with `authorize`."))
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make your client keypair (in the config dir, 0600)")
    new.add_argument("--name", help="the name others see for you (default user@host)")
    new.add_argument("--force", action="store_true", help="replace an existing keypair")
    auth = sub.add_parser("authorize", help="allow a client public key on your kernels")
    auth.add_argument("key", metavar="PUBLIC_KEY_OR_FILE")
    auth.add_argument("--name", help="the name shown for this client (required unless the file has one)")
    rev = sub.add_parser("revoke", help="remove a key (by key or name) from the allow-list")
    rev.add_argument("key_or_name")
    sub.add_parser("list", help="show your public key and the allow-list")
    sub.add_parser("show", help="print your public key line, to send to a kernel's owner")
    return parser


def _keys_last(argv: list[str]) -> list[str]:
    """A Z85 key may begin with '-', which argparse takes for an option: such keys go
    after '--' at the end, where argparse reads them as the positional they are."""
    dashed = [arg for arg in argv if arg.startswith("-") and is_key(arg)]
    if not dashed:
        return argv
    return [arg for arg in argv if arg not in dashed] + ["--", *dashed]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_keys_last(sys.argv[1:] if argv is None else argv))
    try:
        return _COMMANDS[args.command](args)
    except KeyError_ as exc:
        print(f"ipytui keys: {exc}", file=sys.stderr)
        return 2


def _cmd_new(args: argparse.Namespace) -> int:
    path = client_key_path()
    if path.exists() and not args.force:
        raise KeyError_(f"{path} exists; use --force to replace it (old grants stop working)")
    pair = new_keypair(check_name(args.name or default_name()))
    write_keypair(pair, path)
    print(f"new client key: {path}")
    print("Send this line to the kernel's owner (it holds no secret):")
    print(f"  {pair.public} {pair.name}")
    print(f"They run:  ipytui keys authorize {shlex.quote(pair.public)} --name {shlex.quote(pair.name)}")
    return 0


def _cmd_authorize(args: argparse.Namespace) -> int:
    key, file_name = key_from_argument(args.key)
    name = args.name or file_name
    if not name:
        raise KeyError_("say who this key belongs to with --name NAME")
    authorize(key, name)
    print(f"authorized {key} as {check_name(name)!r} in {authorized_keys_path()}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    removed = revoke(args.key_or_name)
    if not removed:
        raise KeyError_(f"{args.key_or_name!r} is not on the allow-list")
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}; "
          "running kernels refuse the key on its next connection")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    pair = load_client_keypair()
    if pair is None:
        print("your key: none (make one with `ipytui keys new`)")
    else:
        print(f"your key ({client_key_path()}):\n  {pair.public} {pair.name}")
    path = authorized_keys_path()
    keys = read_authorized_keys(path)
    print(f"allow-list {path}: {len(keys)} key{'s' if len(keys) != 1 else ''}")
    for key, name in keys.items():
        print(f"  {key} {name}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    pair = load_client_keypair()
    if pair is None:
        raise KeyError_("no client key yet; make one with `ipytui keys new`")
    print(f"{pair.public} {pair.name}")
    return 0


_COMMANDS = {"new": _cmd_new, "authorize": _cmd_authorize, "revoke": _cmd_revoke,
             "list": _cmd_list, "show": _cmd_show}


if __name__ == "__main__":
    sys.exit(main())
