"""``ipytui keys``: make a client keypair, authorize and revoke keys, list them.

The key files themselves are read and written by ``ipytui.kernel.protocol.keyfiles``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ipytui.kernel.protocol.keyfiles import (
    KeyError_,
    authorize,
    authorized_keys_path,
    check_name,
    client_key_path,
    default_name,
    is_key,
    key_from_argument,
    load_client_keypair,
    new_keypair,
    read_authorized_keys,
    revoke,
    write_keypair,
)


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
