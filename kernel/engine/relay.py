"""The engine front's sockets: the controller on one side, the ipytui kernel on the other.

- shell: a ROUTER with the engine's identity, connected to the MUX, task and
  broadcast schedulers (as ipengine's shell socket), proxied in C to a DEALER
  connected to the kernel's shell ROUTER. Routing ids ride along, so replies
  find their scheduler without the front reading a message.
- control: the same, to the kernel's control socket.
- heartbeat: pings from the controller's PUB are echoed to its ROUTER from a
  DEALER with the engine's identity. The front beats, not the worker: a worker
  being restored from its snapshot is still this engine.
- IOPub: the kernel's messages go to the controller's IOPub with the topic
  ``engine.<id>.<type>`` (the topic is not signed; the message is untouched).

Queues: the proxies and the IOPub forwarder have no high-water mark (0), as
ipengine's sockets: a dropped request or reply would leave a client waiting
forever. What piles up is bounded upstream (the task scheduler's ``hwm``
outstanding tasks per engine) and downstream by the kernel's own sockets
(``supervisor/sockets.py``).
"""

from __future__ import annotations

import logging
import threading

import zmq
from ipytui.kernel.engine.registration import Controller, curve_options, secure
from ipytui.kernel.protocol.connection import ConnectionInfo
from ipytui.kernel.protocol.engine_identity import EngineIdentity
from ipytui.kernel.protocol.wire import DELIM
from zmq.devices import ThreadProxy

log = logging.getLogger("ipytui.engine")

# Messages the kernel publishes for its own clients; the cluster has no use for them.
PRIVATE_TOPICS = frozenset({b"iopub_welcome"})


def _proxy(controller: Controller, ident: bytes, urls: list[str], kernel_url: str) -> ThreadProxy:
    """A ROUTER (engine identity) connected to ``urls``, proxied to the kernel's ``kernel_url``."""
    device = ThreadProxy(zmq.ROUTER, zmq.DEALER)
    device.daemon = True
    device.setsockopt_in(zmq.IDENTITY, ident)
    device.setsockopt_in(zmq.SNDHWM, 0)  # nothing dropped: see the module docstring
    device.setsockopt_out(zmq.SNDHWM, 0)
    device.setsockopt_in(zmq.RCVHWM, 0)
    device.setsockopt_out(zmq.RCVHWM, 0)
    for option, value in curve_options(controller):
        device.setsockopt_in(option, value)
    for url in urls:
        device.connect_in(url)
    device.connect_out(kernel_url)
    return device


def _heart(controller: Controller, ident: bytes) -> ThreadProxy:
    device = ThreadProxy(zmq.SUB, zmq.DEALER)
    device.daemon = True
    device.setsockopt_in(zmq.SUBSCRIBE, b"")
    device.setsockopt_out(zmq.IDENTITY, ident)
    for option, value in curve_options(controller):
        device.setsockopt_in(option, value)
        device.setsockopt_out(option, value)
    device.connect_in(controller.url("hb_ping"))
    device.connect_out(controller.url("hb_pong"))
    return device


def start_relays(controller: Controller, identity: EngineIdentity, kernel: ConnectionInfo) -> None:
    """Start the shell and control proxies, the heart and the IOPub forwarder (daemons)."""
    ident = identity.uuid.encode()
    shell_urls = [controller.url("mux"), controller.url("task")]
    if broadcast := controller.broadcast_url(identity.id):
        shell_urls.append(broadcast)
    _proxy(controller, ident, shell_urls, kernel.url("shell")).start()
    _proxy(controller, ident, [controller.url("control")], kernel.url("control")).start()
    _heart(controller, ident).start()
    threading.Thread(
        target=_forward_iopub,
        args=(controller, identity, kernel.url("iopub")),
        name="ipytui-engine-iopub",
        daemon=True,
    ).start()


def _forward_iopub(controller: Controller, identity: EngineIdentity, kernel_url: str) -> None:
    """Kernel IOPub -> controller IOPub, each message under the engine's topic."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(kernel_url)
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0  # as ipengine's IOPub: output is not dropped on the way to the controller
    pub.identity = identity.uuid.encode()
    secure(pub, controller)
    pub.connect(controller.url("iopub"))
    while True:
        try:
            frames = sub.recv_multipart(copy=True)
        except zmq.ZMQError:
            return
        if frames[0] == DELIM:
            frames.insert(0, identity.topic(b"output"))
        elif frames[0] in PRIVATE_TOPICS:
            continue
        else:
            frames[0] = identity.topic(frames[0])
        try:
            pub.send_multipart(frames)
        except zmq.ZMQError as exc:
            log.warning("IOPub forwarding stopped: %s", exc)
            return
