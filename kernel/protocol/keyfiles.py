"""CurveZMQ keys: the user's client keypair and a kernel's allow-list (``ipytui keys``).

The client keypair lives in the config dir as a ZeroMQ certificate
(``client.key_secret``, mode 0600, readable by ``zmq.auth.load_certificate``)
with its public half in ``client.key``. The allow-list is
``authorized_keys`` in the config dir: one ``<z85-public-key> <name>`` a
line, ``#`` comments. The name is what other users see for that key.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq
from ipytui.kernel.protocol.atomic import write_atomic
from ipytui.kernel.protocol.paths import config_dir
from zmq.utils import z85

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
    data = text.encode()
    write_atomic(path, lambda f: f.write(data))
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
