"""A small synchronous Jupyter client on raw pyzmq, used identically for every kernel.

It signs with HMAC-SHA256, verifies every message it receives, and keeps
only what the benchmark needs: reply arrival times, ``idle`` times per
request, stdout text per request and error contents. No ipytui or
jupyter_client code runs on the measuring side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import zmq

DELIM = b"<IDS|MSG>"


class LeanClient:
    """DEALER shell and control, SUB iopub; ``pump`` records what arrives."""

    def __init__(self, info: dict[str, Any], context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        key = str(info.get("key", "")).encode()
        self._hmac = hmac.new(key, digestmod=hashlib.sha256) if key else None
        self.session = uuid.uuid4().hex
        self.shell = self._socket(zmq.DEALER, info, "shell_port")
        self.control = self._socket(zmq.DEALER, info, "control_port")
        self.iopub = self._socket(zmq.SUB, info, "iopub_port")
        self.poller = zmq.Poller()
        for sock in (self.shell, self.control, self.iopub):
            self.poller.register(sock, zmq.POLLIN)
        self.replies: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self.idle: dict[str, float] = {}
        self.busy: dict[str, float] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.streams: dict[str, list[str]] = {}  # only for msg_ids put here by the caller
        self.displays: dict[str, list[list[str]]] = {}  # mime types shown, same rule
        self.iopub_messages = 0

    def _socket(self, kind: int, info: dict[str, Any], port_key: str) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.linger = 0
        sock.setsockopt(zmq.RECONNECT_IVL, 5)  # the default 100 ms would quantize spawn times
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 50)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.rcvhwm = 0
        ip = info.get("ip") or "127.0.0.1"
        if info.get("transport", "tcp") == "ipc":
            sock.connect(f"ipc://{ip}-{info[port_key]}")
        else:
            sock.connect(f"tcp://{ip}:{info[port_key]}")
        return sock

    def close(self) -> None:
        for sock in (self.shell, self.control, self.iopub):
            sock.close(linger=0)

    # -- sending ---------------------------------------------------------------------
    def _sign(self, parts: list[bytes]) -> bytes:
        if self._hmac is None:
            return b""
        h = self._hmac.copy()
        for part in parts:
            h.update(part)
        return h.hexdigest().encode()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "bench",
                  "session": self.session, "date": datetime.now(timezone.utc).isoformat(),
                  "version": "5.3"}
        parts = [json.dumps(header).encode(), b"{}", b"{}", json.dumps(content).encode()]
        sock = self.control if channel == "control" else self.shell
        sock.send_multipart([DELIM, self._sign(parts), *parts])
        return msg_id

    def execute(self, code: str, **extra: Any) -> str:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True, **extra}
        return self.send("shell", "execute_request", content)

    def complete(self, code: str, cursor_pos: int | None = None) -> str:
        pos = len(code) if cursor_pos is None else cursor_pos
        return self.send("shell", "complete_request", {"code": code, "cursor_pos": pos})

    # -- receiving -------------------------------------------------------------------
    def pump(self, timeout_ms: float) -> None:
        """Wait up to timeout_ms for traffic, then drain every socket."""
        for sock, _ in self.poller.poll(timeout_ms):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._record(sock, frames, time.perf_counter())

    def _record(self, sock: zmq.Socket, frames: list[bytes], now: float) -> None:
        i = frames.index(DELIM)
        signature, header_b, parent_b, meta_b, content_b = frames[i + 1 : i + 6]
        if self._hmac is not None and not hmac.compare_digest(
            self._sign([header_b, parent_b, meta_b, content_b]), signature
        ):
            raise RuntimeError("bad signature from the kernel")
        msg_type = json.loads(header_b)["msg_type"]
        parent_id = json.loads(parent_b).get("msg_id", "")
        if sock is not self.iopub:
            self.replies[parent_id] = (now, msg_type, json.loads(content_b))
            return
        self.iopub_messages += 1
        if msg_type == "status":
            state = json.loads(content_b).get("execution_state")
            if state == "idle":
                self.idle[parent_id] = now
            elif state == "busy":
                self.busy[parent_id] = now
        elif msg_type == "stream":
            texts = self.streams.get(parent_id)
            if texts is not None:
                content = json.loads(content_b)
                if content.get("name") == "stdout":
                    texts.append(content.get("text", ""))
        elif msg_type in ("display_data", "execute_result") and parent_id in self.displays:
            self.displays[parent_id].append(sorted(json.loads(content_b).get("data", {})))
        elif msg_type == "error":
            self.errors[parent_id] = json.loads(content_b)

    def wait_for(self, predicate, timeout: float, what: str = "condition") -> None:
        deadline = time.perf_counter() + timeout
        while not predicate():
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
            self.pump(min(left, 0.05) * 1000)

    def wait_reply(self, msg_id: str, timeout: float = 30.0) -> tuple[float, str, dict[str, Any]]:
        self.wait_for(lambda: msg_id in self.replies, timeout, f"the reply to {msg_id[:8]}")
        return self.replies.pop(msg_id)

    def wait_done(self, msg_id: str, timeout: float = 30.0) -> tuple[float, dict[str, Any]]:
        """Reply AND idle: the moment a client knows the request is finished."""
        self.wait_for(lambda: msg_id in self.replies and msg_id in self.idle, timeout,
                      f"reply and idle of {msg_id[:8]}")
        reply_t, _, content = self.replies.pop(msg_id)
        idle_t = self.idle.pop(msg_id)
        self.busy.pop(msg_id, None)
        return max(reply_t, idle_t), content

    def run(self, code: str, timeout: float = 30.0) -> dict[str, Any]:
        """Execute and wait for reply and idle; returns the reply content."""
        return self.wait_done(self.execute(code), timeout)[1]

    def wait_iopub(self, timeout: float = 30.0) -> None:
        """Until a request's status shows up on IOPub (the SUB is subscribed)."""
        deadline = time.perf_counter() + timeout
        while True:
            msg_id = self.send("shell", "kernel_info_request", {})
            try:
                self.wait_for(lambda m=msg_id: m in self.idle, min(0.25, timeout), "iopub")
                self.replies.pop(msg_id, None)
                self.idle.pop(msg_id, None)
                return
            except TimeoutError:
                if time.perf_counter() > deadline:
                    raise
