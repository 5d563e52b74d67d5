"""Where client messages enter the supervisor: verify, validate, route, and
survive whatever a handler does with them.

A mixin of :class:`~ipytui.kernel.supervisor.loop.Supervisor` (its state is
the supervisor's). Every message is checked here, once, against the wire
rules (signature, replay window, size) and the message schema
(``protocol/schema.py``) before anything uses a field of it. A bad request on
shell or control gets an error reply (``BadRequest``) and one log line; a bad
message that cannot be answered is dropped with one log line. An exception in
any handler is logged and answered (``InternalError``); the loop goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq
from ipytui.kernel.protocol.schema import message_problem, reply_type
from ipytui.kernel.protocol.wire import BadMessage, Codec, Message, WireError
from ipytui.kernel.supervisor.faults import Faults
from ipytui.kernel.supervisor.inflight import Pending, for_main_thread
from ipytui.kernel.supervisor.requests import REVOKED

log = logging.getLogger("ipytui.supervisor")

MAX_CLIENT_FRAMES = 4096  # routing ids + 6 + buffers; the worker pipes take at most 65536


class Intake:
    """Receiving client messages (see the module docstring)."""

    codec: Codec
    security: Any
    presence: Any
    inflight: dict[str, Pending]
    asking: bytes | None
    execution_count: int
    faults: Faults
    publish: Callable[..., None]
    to_worker: Callable[..., None]
    _revoked: Callable[[str, Message], None]
    arrived: Callable[[Pending], Pending]

    def on_client(self, channel: str, sock: zmq.Socket) -> None:
        """A message from a client: verify, answer ourselves or forward; never raise."""
        try:
            frames = self.security.recv(sock)  # notes the sender's authenticated name
            if len(frames) > MAX_CLIENT_FRAMES:
                log.warning("dropped a message of %d frames on %s", len(frames), channel)
                return
            msg = self._accept(channel, frames)
        except Exception:  # noqa: BLE001 - nothing known to answer: drop, say so, go on
            log.exception(
                "the supervisor failed reading a message on %s; it keeps serving", channel
            )
            return
        if msg is None:
            return
        try:
            self._route(channel, msg, frames)
        except Exception as exc:  # noqa: BLE001 - one request must never end the kernel
            log.exception(
                "the supervisor failed on a %s on %s; it keeps serving", msg.msg_type, channel
            )
            self.inflight.pop(msg.msg_id, None)
            self.refuse(
                channel,
                msg,
                "InternalError",
                f"the kernel failed to handle this {msg.msg_type} "
                f"({type(exc).__name__}: {exc}); it keeps serving",
            )

    def _accept(self, channel: str, frames: list[bytes]) -> Message | None:
        """The verified, schema-checked message, or None (refused or dropped, and said)."""
        try:
            msg = self.codec.deserialize(frames)
        except BadMessage as exc:
            self._refuse_bad(channel, exc.msg, str(exc))
            return None
        except WireError as exc:
            log.warning("dropped a message on %s: %s", channel, exc)
            return None
        problem = message_problem(channel, msg.msg_type, msg.content)
        if problem:
            self._refuse_bad(channel, msg, problem)
            return None
        return msg

    def _refuse_bad(self, channel: str, msg: Message, why: str) -> None:
        if channel in ("shell", "control") and msg.msg_type.endswith("_request"):
            log.warning("refused a %s on %s: %s", msg.msg_type, channel, why)
            self.refuse(channel, msg, "BadRequest", why)
        else:
            log.warning("dropped a %s on %s: %s", msg.msg_type, channel, why)

    def refuse(self, channel: str, msg: Message, ename: str, evalue: str) -> None:
        """An error reply (busy, reply, idle) to a request, touching no books: its
        header may be all that is known to be well formed. Never raises."""
        if channel not in ("shell", "control") or not msg.msg_type.endswith("_request"):
            return
        error = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        content: dict[str, Any] = {"status": "error", **error}
        if msg.msg_type == "execute_request":
            content["execution_count"] = self.execution_count
        try:
            self.publish("iopub", "status", {"execution_state": "busy"}, parent=msg)
            if msg.msg_type == "execute_request":
                self.publish("iopub", "error", error, parent=msg)
            self.publish(
                channel, reply_type(msg.msg_type), content, parent=msg, identities=msg.identities
            )
            self.publish("iopub", "status", {"execution_state": "idle"}, parent=msg)
        except Exception:  # noqa: BLE001 - the refusal itself must not end the loop
            log.exception("could not send the error reply to a %s", msg.msg_type)

    def _route(self, channel: str, msg: Message, frames: list[bytes]) -> None:
        """A valid message: to its handler here, or to the worker."""
        self.faults.hit(f"request:{msg.msg_type}")
        if channel == "stdin":
            self._on_stdin(msg, frames, revoked=self.security.last_revoked)
            return
        if self.security.last_revoked:
            self._revoked(channel, msg)
            return
        try:
            self.faults.hit("presence")
            self.presence.on_request(
                channel, msg, self.security.last_fd, self.security.peer_name(msg.identities)
            )
        except Exception:  # noqa: BLE001 - bookkeeping must not cost the request its answer
            log.exception("presence failed on a %s; the request is served anyway", msg.msg_type)
        if self.presence.handles(msg):
            self.presence.on_comm(msg)
            return
        handler = getattr(self, f"do_{msg.msg_type}", None)
        if handler is not None:
            handler(channel, msg)
            return
        if msg.msg_type.endswith("_request"):
            self.inflight[msg.msg_id] = self.arrived(Pending(channel, msg, frames))
        self.to_worker(channel, frames, for_main_thread(channel, msg))

    def _on_stdin(self, msg: Message, frames: list[bytes], revoked: bool) -> None:
        """An input_reply goes to the worker only from the client its input() asked:
        nobody else can answer (or race) another user's prompt. A revoked key's
        answer becomes an error, so that input() ends instead of waiting forever."""
        if self.asking is None or msg.identities[:1] != [self.asking]:
            log.warning("dropped a %s from a client that was not asked for input", msg.msg_type)
            return
        if revoked:
            msg.content = {
                "status": "error",
                "value": "",
                "ename": "PermissionError",
                "evalue": REVOKED,
            }
            frames = self.codec.serialize(msg)
        self.asking = None  # one answer per prompt
        self.to_worker("stdin", frames)

    def _client_left(self, routing_id: bytes) -> None:
        """The client an input() waits for is gone: end the prompt (EOFError), or
        the kernel would wait for it, and everyone behind it, until an interrupt."""
        if self.asking != routing_id:
            return
        self.asking = None
        reply = self.codec.msg(
            "input_reply",
            {"status": "error", "value": "", "evalue": "the client asked for input left"},
        )
        self.to_worker("stdin", self.codec.serialize(reply, [routing_id]))
        log.info("the client asked for input left; its input() ends with EOFError")
