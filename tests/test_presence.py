"""Presence over the wire: peers, drafts, states, the queue, departures, replay, refusals.

Three and four clients on one real kernel: KernelClients that open the
``ipytui.presence`` comm (as the UI does) and a foreign jupyter_client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from conftest import IPYTUI_ARGV
from ipytui.kernel.client.kernel_client import KernelClient
from jupyter_client import BlockingKernelClient

TIMEOUT = 20


class Watcher:
    """A client's view of the presence comm: the latest peers message and the replay."""

    def __init__(self, client: KernelClient, name: str) -> None:
        self.client = client
        self.name = name
        self.comm_id = uuid.uuid4().hex
        self.peers: dict[str, Any] = {}
        self.replay: list[dict[str, Any]] | None = None
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        sub = self.client.iopub_messages()
        self._task = asyncio.create_task(self._pump(sub))
        self.client.send("shell", "comm_open", {
            "comm_id": self.comm_id, "target_name": "ipytui.presence",
            "data": {"name": self.name, "kind": "ipytui", "host": "testhost"}})

    async def _pump(self, sub: Any) -> None:
        async for msg in sub:
            if msg.msg_type != "comm_msg" or msg.content.get("comm_id") != self.comm_id:
                continue
            data = msg.content["data"]
            async with self.changed:
                if data["type"] == "replay":
                    self.replay = data["cells"]
                else:
                    self.peers = data
                self.changed.notify_all()

    def send(self, data: dict[str, Any], comm_id: str | None = None) -> None:
        self.client.send("shell", "comm_msg", {"comm_id": comm_id or self.comm_id, "data": data})

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            async with self.changed:
                await self.changed.wait_for(lambda: bool(self.peers) and predicate(self.peers))
                return self.peers

        return await asyncio.wait_for(wait(), TIMEOUT)

    def by_name(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.peers.get("peers", []) if p["display_name"] == name), None)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()


def names(snapshot: dict[str, Any]) -> set[str]:
    return {p["display_name"] for p in snapshot["peers"]}


@pytest.fixture
async def ipytui_kernel(start_kernel: Any) -> Any:
    return start_kernel(IPYTUI_ARGV)


async def test_three_clients_see_each_other_drafts_states_and_departures(
        ipytui_kernel: Any, make_client: Any) -> None:
    info, _ = ipytui_kernel
    ada = Watcher(await make_client(info, username="ada"), "Ada")
    bob = Watcher(await make_client(info, username="bob"), "Bob")
    await ada.open()
    await bob.open()
    foreign = BlockingKernelClient()
    foreign.load_connection_info(info.to_dict())
    foreign.session.username = "carol"
    foreign.start_channels()
    try:
        foreign.wait_for_ready(timeout=TIMEOUT)
        snap = await ada.until(lambda s: {"Ada", "Bob", "carol"} <= names(s))
        assert ada.by_name("Bob")["kind"] == "ipytui"
        assert ada.by_name("carol")["kind"] == "jupyter"

        bob.send({"type": "hello", "name": "Bob", "kind": "ipytui", "host": "h", "tag": "pts/7"})
        bob.send({"type": "draft", "text": "import numpy as np\nnp.", "cursor": 1})
        await ada.until(lambda s: (ada.by_name("Bob") or {}).get("draft") == "import numpy as np\nnp.")
        assert ada.by_name("Bob")["state"] == "typing"
        assert (ada.by_name("Bob")["tag"], ada.by_name("Bob")["cursor"]) == ("pts/7", 1)

        running = asyncio.create_task(ada.client.execute("import time; time.sleep(3)"))
        snap = await bob.until(lambda s: (bob.by_name("Ada") or {}).get("state") == "running")
        assert bob.by_name("Ada")["cell"] >= 1
        queued = asyncio.create_task(bob.client.execute("after = 1"))
        snap = await ada.until(lambda s: [q["state"] for q in s["queue"]] == ["running", "queued"])
        assert [q["session"] for q in snap["queue"]] == [ada.client.codec.session,
                                                        bob.client.codec.session]
        await running
        await queued
        await ada.until(lambda s: not s["queue"])
        assert "import time; time.sleep(3)" in ada.by_name("Ada")["recent"]
    finally:
        foreign.stop_channels()
    await ada.until(lambda s: "carol" not in names(s))
    await bob.client.stop()
    await ada.until(lambda s: names(s) == {"Ada"})
    await ada.close()


async def test_late_joiner_gets_the_recent_stream(ipytui_kernel: Any, make_client: Any) -> None:
    info, _ = ipytui_kernel
    first = await make_client(info, username="ada")
    await first.execute("print('before you came')")
    await first.execute("6 * 7")
    late = Watcher(await make_client(info, username="zed"), "Zed")
    await late.open()
    await asyncio.wait_for(_until_replay(late), TIMEOUT)
    codes = [cell["code"] for cell in late.replay]
    assert codes[-2:] == ["print('before you came')", "6 * 7"]
    outputs = late.replay[-1]["outputs"]
    assert any(o["msg_type"] == "execute_result" and o["content"]["data"]["text/plain"] == "42"
               for o in outputs)
    assert late.replay[-2]["outputs"][0]["content"]["text"] == "before you came\n"
    await late.close()


async def _until_replay(watcher: Watcher) -> None:
    async with watcher.changed:
        await watcher.changed.wait_for(lambda: watcher.replay is not None)


async def test_bad_presence_messages_are_refused(ipytui_kernel: Any, make_client: Any) -> None:
    info, _ = ipytui_kernel
    ada = Watcher(await make_client(info, username="ada"), "Ada")
    eve = Watcher(await make_client(info, username="eve"), "Eve")
    await ada.open()
    await eve.open()
    await ada.until(lambda s: {"Ada", "Eve"} <= names(s))
    ada.send({"type": "draft", "text": "mine"})
    await eve.until(lambda s: (eve.by_name("Ada") or {}).get("draft") == "mine")
    eve.send({"type": "draft", "text": "forged"}, comm_id=ada.comm_id)  # Ada's comm, Eve's session
    eve.send({"type": "draft", "text": "x" * 100_000})  # oversized
    eve.send({"type": "state", "state": "god-mode"})
    eve.send({"type": "hello", "name": ["not", "a", "string"]})
    eve.send({"type": "hello", "name": "Mallory", "tag": "t" * 500})  # refused whole
    eve.send({"type": "draft", "text": "half", "cursor": 5})  # cursor beyond the draft
    eve.send({"type": "draft", "text": "eve's own"})  # the marker that all of the above was read
    await ada.until(lambda s: (ada.by_name("Eve") or {}).get("draft") == "eve's own")
    assert ada.by_name("Ada")["draft"] == "mine"
    assert ada.by_name("Eve")["state"] == "typing"
    assert ada.by_name("Mallory") is None
    result = await ada.client.execute("1 + 1")
    assert result.status == "ok"
    await ada.close()
    await eve.close()


async def test_presence_survives_a_worker_crash(ipytui_kernel: Any, make_client: Any) -> None:
    info, _ = ipytui_kernel
    ada = Watcher(await make_client(info, username="ada"), "Ada")
    bob = Watcher(await make_client(info, username="bob"), "Bob")
    await ada.open()
    await bob.open()
    await ada.until(lambda s: {"Ada", "Bob"} <= names(s))
    result = await bob.client.execute("import ctypes; ctypes.string_at(0)", timeout=TIMEOUT)
    assert result.status == "error"
    snap = await ada.until(lambda s: not s["queue"])
    assert {"Ada", "Bob"} <= names(snap)
    assert ada.by_name("Bob")["state"] == "idle"
    await ada.close()
    await bob.close()
