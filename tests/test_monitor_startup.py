"""A bad connection in the first moments of an encrypted kernel must not hang it.

The security guard monitors each Curve socket for refused handshakes. The
monitor's reading end used to be connected later, by the guard's thread; an
event before that (a port probe, a client with a wrong key) blocked libzmq's
I/O thread on a monitor nobody read, holding the lock the supervisor's
presence watch needs next: the kernel hung for good (seen with a kernel
started over ssh, whose UI connects the moment the ports are up).
"""

from __future__ import annotations

import socket

import zmq
from ipytui.kernel.supervisor.security import _Guard

# A ZMTP 3 greeting asking for CURVE, then bytes that are no CURVE HELLO.
BAD_HANDSHAKE = (
    b"\xff"
    + b"\x00" * 8
    + b"\x7f"
    + b"\x03\x00"
    + b"CURVE".ljust(20, b"\x00")
    + b"\x00" * 32
    + b"\x04\x05garbage" * 8
)


def _read_until_closed(probe: socket.socket) -> None:
    """What the kernel sends (its own ZMTP greeting may come first), until it drops
    the connection; socket.timeout if it never does."""
    try:
        while probe.recv(64):
            pass
    except ConnectionResetError:
        pass


def test_a_refused_handshake_before_the_guard_runs_does_not_stall_the_socket() -> None:
    with zmq.Context() as ctx:
        guard = _Guard(ctx, lambda *_: (True, ""), {})  # its thread not started yet
        public, secret = zmq.curve_keypair()
        router = ctx.socket(zmq.ROUTER)
        router.linger = 0
        client = ctx.socket(zmq.DEALER)
        client.linger = 0
        try:
            router.curve_server = True
            router.curve_secretkey, router.curve_publickey = secret, public
            guard.watch(router)
            port = router.bind_to_random_port("tcp://127.0.0.1")
            with socket.create_connection(("127.0.0.1", port), timeout=30) as probe:
                probe.sendall(BAD_HANDSHAKE)
                # The kernel drops the connection once the failure is reported: that
                # report is what hung before.
                _read_until_closed(probe)
            # The I/O thread still serves: a proper Curve client gets through.
            client.curve_serverkey = public
            client.curve_publickey, client.curve_secretkey = zmq.curve_keypair()
            client.connect(f"tcp://127.0.0.1:{port}")
            client.send(b"hello")
            assert router.poll(30_000) and router.recv_multipart()[1] == b"hello"
        finally:
            client.close()
            router.close()
            guard.start()  # late, as on a busy machine; it closes the monitor when stopped
            guard.stop()
