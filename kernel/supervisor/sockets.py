"""The supervisor's public sockets and the bounds of their send queues.

Send queues toward clients are bounded (issue #23): one client that stops
reading must cost the supervisor a few tens of MiB at most, and never slow
the others.

- IOPub (XPUB): messages beyond IOPUB_SNDHWM queued for one subscriber are
  dropped for that subscriber only, as ZeroMQ's PUB does; the others get
  everything. A stream message is at most 256 K characters, so that is at
  most 32 MiB per stalled subscriber. A reading client has its own receive
  queue (1000 messages by default) in front of this one. XPUB cannot tell
  which subscriber missed what, so no per-subscriber notice can be sent.
- shell, control, stdin (ROUTER): a client that does not read its replies
  loses those past ROUTER_SNDHWM queued for it (ROUTER drops for a full peer;
  the supervisor never blocks on a client).
"""

from __future__ import annotations

from typing import Any

import zmq

IOPUB_SNDHWM = 128
ROUTER_SNDHWM = 1000


def make_router(ctx: zmq.Context, security: Any, url: str) -> zmq.Socket:
    """A bound ROUTER for shell, control or stdin."""
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 1000
    sock.sndhwm = ROUTER_SNDHWM
    security.secure(sock)
    sock.bind(url)
    return sock


def make_iopub(ctx: zmq.Context, security: Any, url: str) -> zmq.Socket:
    """The bound XPUB for IOPub (verbose: every subscription is seen, to greet it)."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.linger = 1000
    sock.sndhwm = IOPUB_SNDHWM
    security.secure(sock)
    sock.bind(url)
    return sock
