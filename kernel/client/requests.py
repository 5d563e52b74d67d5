"""The named requests of the client (complete, inspect, history, ...): each one
sends a request and returns the reply's content.

A mixin of :class:`~ipytui.kernel.client.kernel_client.KernelClient`, which
provides :meth:`request`.
"""

from __future__ import annotations

from typing import Any

from ipytui.kernel.protocol.wire import Message


class RequestMethods:
    """Request helpers; ``request`` is the client's."""

    async def request(self, channel: str, msg_type: str, content: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Message:
        raise NotImplementedError

    async def _content(self, channel: str, msg_type: str, content: dict[str, Any],
                       timeout: float | None) -> dict[str, Any]:
        return (await self.request(channel, msg_type, content, timeout)).content

    async def complete(self, code: str, cursor_pos: int | None = None,
                       timeout: float | None = None) -> dict[str, Any]:
        pos = len(code) if cursor_pos is None else cursor_pos
        return await self._content("shell", "complete_request", {"code": code, "cursor_pos": pos}, timeout)

    async def inspect(self, code: str, cursor_pos: int | None = None, detail_level: int = 0,
                      timeout: float | None = None) -> dict[str, Any]:
        pos = len(code) if cursor_pos is None else cursor_pos
        content = {"code": code, "cursor_pos": pos, "detail_level": detail_level}
        return await self._content("shell", "inspect_request", content, timeout)

    async def is_complete(self, code: str, timeout: float | None = None) -> dict[str, Any]:
        return await self._content("shell", "is_complete_request", {"code": code}, timeout)

    async def history(self, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        """history_request; defaults to the last 10 raw inputs (``hist_access_type='tail'``)."""
        content = {"output": False, "raw": True, "hist_access_type": "tail", "n": 10, **kwargs}
        return await self._content("shell", "history_request", content, timeout)

    async def kernel_info(self, timeout: float | None = None) -> dict[str, Any]:
        return await self._content("shell", "kernel_info_request", {}, timeout)

    async def comm_info(self, target_name: str | None = None,
                        timeout: float | None = None) -> dict[str, Any]:
        content = {} if target_name is None else {"target_name": target_name}
        return await self._content("shell", "comm_info_request", content, timeout)

    async def interrupt(self, timeout: float | None = None) -> dict[str, Any]:
        """interrupt_request on control (for kernels with interrupt_mode 'message')."""
        return await self._content("control", "interrupt_request", {}, timeout)

    async def shutdown(self, restart: bool = False, timeout: float | None = None) -> dict[str, Any]:
        return await self._content("control", "shutdown_request", {"restart": restart}, timeout)
