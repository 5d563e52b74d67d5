"""Finding the controller and registering with it, as ``ipengine`` does.

The controller's engine connection info comes, in ipyparallel's order of
precedence, from $IPP_CONNECTION_INFO (what ``ipp.Cluster`` hands the engines
it starts), an explicit ``--file``, or ``ipcontroller[-CLUSTER_ID]-engine.json``
in the profile's security dir. See ipyparallel's
``docs/source/reference/messages.md`` (registration).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from ipytui.kernel.protocol.wire import Codec, WireError

CONNECTION_ENV = "IPP_CONNECTION_INFO"


class EngineError(Exception):
    """The engine cannot start as asked; the text says why."""


@dataclass
class Controller:
    """The engine-facing side of one controller (its ``*-engine.json``)."""

    info: dict[str, Any]
    registration_url: str

    def url(self, key: str) -> str:
        return f"{self.info['interface']}:{self.info[key]}"

    def broadcast_url(self, engine_id: int) -> str:
        """One of the broadcast scheduler's leaves, picked by engine id as ipengine does."""
        ports = self.info.get("broadcast") or []
        if not ports:
            return ""
        return f"{self.info['interface']}:{ports[engine_id % len(ports)]}"

    @property
    def key(self) -> bytes:
        return str(self.info.get("key", "")).encode("utf-8")

    @property
    def curve_serverkey(self) -> bytes | None:
        key = self.info.get("curve_serverkey")
        return key.encode("ascii") if key else None


def profile_dir(profile: str | None, given: str | None) -> Path:
    """``--profile-dir``, else $IPP_PROFILE_DIR, else IPython's dir for ``--profile``."""
    if given:
        return Path(given).expanduser()
    if os.environ.get("IPP_PROFILE_DIR") and not profile:
        return Path(os.environ["IPP_PROFILE_DIR"])
    ipython_dir = Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython").expanduser()
    return ipython_dir / f"profile_{profile or 'default'}"


def connection_file(profile: Path, cluster_id: str | None) -> Path:
    cluster_id = os.environ.get("IPP_CLUSTER_ID", "") if cluster_id is None else cluster_id
    name = f"ipcontroller-{cluster_id}-engine.json" if cluster_id else "ipcontroller-engine.json"
    return profile / "security" / name


def load_controller(
    file: str | None, profile: Path, cluster_id: str | None, url: str | None, wait: float
) -> Controller:
    """The controller's connection info (waiting up to ``wait`` s for its file)."""
    text = os.environ.get(CONNECTION_ENV) if not file else None
    path = Path(file).expanduser() if file else connection_file(profile, cluster_id)
    deadline = time.monotonic() + wait
    while not text:
        try:
            text = path.read_text()
            json.loads(text)  # the controller may still be writing it
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise EngineError(f"no controller connection file {path} ({exc})") from None
            text = None
            time.sleep(0.1)
    try:
        info = json.loads(text)
        registration = f"{info['interface']}:{info['registration']}"
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"unusable controller connection info ({exc!r})") from None
    if info.get("signature_scheme", "hmac-sha256") != "hmac-sha256":
        raise EngineError(f"signature scheme {info['signature_scheme']} is not supported")
    return Controller(info, url or registration)


def curve_options(controller: Controller) -> list[tuple[int, bytes]]:
    """CurveZMQ socket options toward the controller when it has a server key (with a
    fresh client key pair), else none."""
    server = controller.curve_serverkey
    if not server:
        return []
    public, secret = zmq.curve_keypair()
    return [
        (zmq.CURVE_SERVERKEY, server),
        (zmq.CURVE_PUBLICKEY, public),
        (zmq.CURVE_SECRETKEY, secret),
    ]


def secure(sock: zmq.Socket, controller: Controller) -> None:
    for option, value in curve_options(controller):
        sock.setsockopt(option, value)


def register(
    ctx: zmq.Context, controller: Controller, ident: str, requested_id: int | None, timeout: float
) -> tuple[int, int]:
    """Send registration_request for the engine uuid ``ident``; (engine id, heartbeat
    period ms)."""
    codec = Codec(
        controller.key, session=ident, username=os.environ.get("USER", "engine"), check_replay=False
    )
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.identity = ident.encode()
    secure(sock, controller)
    try:
        try:
            sock.connect(controller.registration_url)
        except zmq.ZMQError as exc:
            raise EngineError(
                f"cannot reach the controller at {controller.registration_url!r}: {exc}"
            ) from None
        content: dict[str, Any] = {"uuid": ident}
        if requested_id is not None:
            content["id"] = requested_id
        sock.send_multipart(codec.serialize(codec.msg("registration_request", content)))
        if not sock.poll(int(timeout * 1000)):
            raise EngineError(
                f"no registration reply from {controller.registration_url} within {timeout:g} s"
            )
        try:
            reply = codec.deserialize(sock.recv_multipart())
        except WireError as exc:
            raise EngineError(f"bad registration reply: {exc}") from None
    finally:
        sock.close()
    if reply.content.get("status") != "ok":
        raise EngineError(f"registration refused: {reply.content.get('evalue') or reply.content}")
    return int(reply.content["id"]), int(reply.content.get("hb_period", 3000))


def unregister(ctx: zmq.Context, controller: Controller, identity: tuple[str, int]) -> None:
    """Tell the hub the engine is leaving (as ipengine's nanny does), so it drops the
    engine now instead of after its missed heartbeats. Best effort: never raises."""
    ident, engine_id = identity
    codec = Codec(controller.key, session=ident, check_replay=False)
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 1000  # time for the message to leave before the process ends
    try:
        secure(sock, controller)
        sock.connect(controller.registration_url)
        sock.send_multipart(codec.serialize(codec.msg("unregistration_request", {"id": engine_id})))
    except zmq.ZMQError:
        pass
    finally:
        sock.close()
