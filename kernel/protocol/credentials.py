"""Curve keys in connection files: the kernel's own pair, the share file a
remote user gets, and the keys a client connects with."""

from __future__ import annotations

import os
from pathlib import Path

import zmq
from ipytui.kernel.protocol import keyfiles as keys
from ipytui.kernel.protocol.connection import (
    ConnectionError_,
    ConnectionInfo,
    read_connection_file,
    write_connection_file,
)


# -- kernel side: keys in connection files ------------------------------------
def add_server_keys(info: ConnectionInfo) -> ConnectionInfo:
    """Give ``info`` a fresh server keypair, stored as Jupyter stores it."""
    pair = keys.new_keypair()
    info.curve_publickey, info.curve_secretkey = pair.public, pair.secret
    return info


def shared_info(info: ConnectionInfo, host: str) -> ConnectionInfo:
    """What a remote user needs and nothing of the server's secrets."""
    if not info.curve_secretkey:
        raise ConnectionError_("only an encrypted kernel can be shared")
    return ConnectionInfo(
        shell_port=info.shell_port, iopub_port=info.iopub_port, stdin_port=info.stdin_port,
        control_port=info.control_port, hb_port=info.hb_port, ip=host, key=info.key,
        transport=info.transport, signature_scheme=info.signature_scheme,
        kernel_name=info.kernel_name,
        curve_serverkey=zmq.curve_public(info.curve_secretkey.encode()).decode("ascii"),
        extra={"ipytui_shared": True},
    )


def share_file_path(connection_file: Path) -> Path:
    """``share-<name>.json`` next to the connection file (not matched by ``kernel-*.json``)."""
    return connection_file.with_name(f"share-{connection_file.name}")


def write_shared_file(info: ConnectionInfo, host: str, path: Path) -> Path:
    return write_connection_file(shared_info(info, host), path)


# -- client side ----------------------------------------------------------------
def with_client_keys(info: ConnectionInfo, pair: keys.KeyPair | None = None) -> ConnectionInfo:
    """Set the keys a client connects with: ``curve_serverkey`` plus a client keypair.

    A private file (server keypair, Jupyter's format) connects as the kernel's
    owner with that very pair, as jupyter_client does. A shared file (server
    public key only) needs the user's keypair (``pair``, else ``ipytui keys new``).
    The result is for connecting only: do not write it back as a connection file.
    """
    if info.curve_secretkey and not info.curve_serverkey:
        info.curve_serverkey = zmq.curve_public(info.curve_secretkey.encode()).decode("ascii")
        info.curve_publickey = info.curve_serverkey
        return info
    if info.curve_serverkey and not info.curve_secretkey:
        pair = pair or keys.load_client_keypair()
        if pair is None:
            raise ConnectionError_(
                "this kernel only lets in authorized keys and you have none: run "
                "`ipytui keys new` and have the kernel's owner authorize the printed key")
        info.curve_publickey, info.curve_secretkey = pair.public, pair.secret
    return info


def client_info(path: str | os.PathLike[str], pair: keys.KeyPair | None = None) -> ConnectionInfo:
    """Read a connection file (private or shared) ready for ``KernelClient``."""
    try:
        return with_client_keys(read_connection_file(path), pair)
    except keys.KeyError_ as exc:
        raise ConnectionError_(str(exc)) from None
