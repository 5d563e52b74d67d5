"""Presence in the UI: three clients on one real ipytui kernel, then a late fourth.

Two ipytui apps run under the Pilot at once (two ``run_test()`` contexts on
one loop), attached to the same connection file, next to a foreign
jupyter_client. Each app's peers panel shows the others with their names and
states, a draft typed in one shows in the other's panel detail, a cell run by
one is attributed in the other's stream, departures are noticed, and a late
app shows the earlier cells from the presence replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from ipytui.app.config import Config
from ipytui.kernel.client.kernel_client import KernelClient
from jupyter_client import BlockingKernelClient
from test_ui_support import (
    IPYKERNEL_ARGV,
    IPYTUI_KERNEL_ARGV,
    SIZE,
    KernelProcess,
    make_app,
    run_cell,
    type_text,
    wait_for,
    wait_ready,
)

TIMEOUT = 60.0


@pytest.fixture
def kernel(tmp_path):
    proc = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    yield proc
    proc.stop()


def app_named(kernel: KernelProcess, name: str):
    return make_app(kernel, config=Config(display_name=name, scrollback_lines=5000))


def who_is(label: str, name: str) -> bool:
    """Whether a peer label (``name@host tag``) is that user's."""
    return label.split("@")[0].split(" ")[0] == name


def peer(screen, name: str):
    return next((p for p in screen.peers_panel.peers if who_is(p.name, name)), None)


def state_of(screen, name: str) -> str:
    found = peer(screen, name)
    return found.state if found is not None else ""


async def presence_ready(pilot) -> None:
    await wait_ready(pilot)
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.presence.active, "the presence comm", TIMEOUT)


async def test_three_clients_then_a_late_joiner(kernel):
    alice_app, bob_app = app_named(kernel, "alice"), app_named(kernel, "bob")
    host = socket.gethostname()
    carol = BlockingKernelClient()
    carol.load_connection_info(kernel.info.to_dict())
    carol.session.username = "carol"
    async with contextlib.AsyncExitStack() as stack:
        alice = await stack.enter_async_context(alice_app.run_test(size=SIZE))
        bob_stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(bob_stack)
        bob = await bob_stack.enter_async_context(bob_app.run_test(size=SIZE))
        await presence_ready(alice)
        await presence_ready(bob)
        carol.start_channels()
        stack.callback(carol.stop_channels)
        await asyncio.to_thread(carol.wait_for_ready, timeout=TIMEOUT)
        a, b = alice_app.main_screen, bob_app.main_screen

        # Everyone sees everyone, with names, kinds and hosts.
        for screen, me, others in ((a, "alice", ("bob", "carol")), (b, "bob", ("alice", "carol"))):
            await wait_for(alice, lambda s=screen, o=others: all(peer(s, n) for n in o),
                           f"{me} to see {others}", TIMEOUT)
            assert peer(screen, me).is_self
            assert f"{peer(screen, me).name} (you): idle" in screen.peers_panel.plain
        assert (peer(a, "bob").kind, peer(a, "bob").host) == ("ipytui", host)
        assert peer(a, "carol").kind == "jupyter"

        # A draft typed in bob's app shows live in alice's panel, in bob's row, unasked.
        b.editor.focus()
        await type_text(bob, "import numpy as np")
        await wait_for(alice, lambda: "| import numpy as np" in a.peers_panel.plain,
                       "bob's draft in alice's panel row", TIMEOUT)
        assert "import numpy as np" not in a.peers_panel.plain.split("\n")[0]  # not in hers
        # Alice clicks bob's row for the detail (rows: alice 2 lines, bob 3, carol 2).
        await alice.click(a.peers_panel.peer_list, offset=(4, 3))
        assert a.peers_panel.selected == peer(a, "bob").session
        await wait_for(alice, lambda: "import numpy as np" in a.peers_panel.detail.plain,
                       "bob's draft in alice's detail", TIMEOUT)
        assert state_of(a, "bob") == "typing"
        # A second line, then the cursor back up: alice sees which line bob is on.
        await bob.press("ctrl+j")
        await type_text(bob, "np.zeros(3)")
        await wait_for(alice, lambda: peer(a, "bob").cursor == 1, "bob's cursor on line 2", TIMEOUT)
        await bob.press("up")
        await wait_for(alice, lambda: peer(a, "bob").cursor == 0, "bob's cursor on line 1", TIMEOUT)
        assert peer(a, "bob").draft == "import numpy as np\nnp.zeros(3)"

        # Bob picks a peer with the keys, then goes back to typing.
        await bob.press("f6")
        assert b.peers_panel.selected == peer(b, "alice").session
        await bob.press("down")
        await wait_for(bob, lambda: b.peers_panel.selected == peer(b, "carol").session, "carol")
        await bob.press("up", "up")  # past alice, onto his own row: the detail says it is him
        await wait_for(bob, lambda: b.peers_panel.selected == b.session.session_id, "bob's own row")
        assert f"{peer(b, 'bob').name} (you) · draft" in b.peers_panel.detail.plain
        await bob.press("escape")
        assert b.focused is b.editor

        # Bob runs a cell: alice sees him running, then his cell attributed to him.
        b.editor.set_text("import time; time.sleep(2); shared = 41 + 1")
        await bob.press("f5")
        await wait_for(alice, lambda: state_of(a, "bob").startswith("running cell ["),
                       "bob running in alice's panel", TIMEOUT)
        assert "queue: bob" in a.peers_panel.plain
        await wait_for(alice, lambda: state_of(a, "bob") == "idle", "bob idle again", TIMEOUT)
        bobs = [c for c in a.stream.cells.values() if who_is(c.who, "bob") and "shared" in c.code]
        assert bobs and not bobs[0].own
        assert "import time" in a.peers_panel.detail.plain  # his recent inputs

        # Carol (jupyter_client) runs one: both apps attribute it to her.
        await asyncio.to_thread(carol.execute_interactive, "print('from carol', shared)",
                                timeout=TIMEOUT, output_hook=lambda msg: None)
        for pilot, screen in ((alice, a), (bob, b)):
            await wait_for(pilot, lambda s=screen: any(
                who_is(c.who, "carol") and "from carol 42" in c.plain for c in s.stream.cells.values()),
                "carol's cell attributed", TIMEOUT)

        # Alice runs one of her own; bob sees it as hers.
        a.editor.focus()
        await run_cell(alice, "mine = 'alice'")
        await wait_for(bob, lambda: any(who_is(c.who, "alice") and not c.own and "mine" in c.code
                                        for c in b.stream.cells.values()),
                       "alice's cell in bob's stream", TIMEOUT)

        # Departures: carol's client stops, then bob's app quits.
        carol.stop_channels()
        await wait_for(alice, lambda: peer(a, "carol") is None, "carol gone", TIMEOUT)
        await bob_stack.aclose()
        await wait_for(alice, lambda: peer(a, "bob") is None, "bob gone", TIMEOUT)

        # A late joiner sees the earlier cells, attributed to who ran them.
        dave_app = app_named(kernel, "dave")
        async with dave_app.run_test(size=SIZE) as dave:
            await presence_ready(dave)
            d = dave_app.main_screen

            def history():
                return [c for c in d.stream.cells.values() if c.has_class("-history")]

            await wait_for(dave, lambda: len(history()) >= 3, "the replayed cells", TIMEOUT)
            by_who = {c.who.split("@")[0]: c for c in history()}
            assert "shared = 41 + 1" in by_who["bob"].code
            assert "from carol 42" in by_who["carol"].plain
            assert "mine = 'alice'" in by_who["alice"].code
            assert not any(c.own for c in history())
            await wait_for(dave, lambda: peer(d, "alice") is not None, "alice in dave's panel")


async def test_draft_sharing_toggles_off_and_on(kernel):
    alice_app = app_named(kernel, "alice")
    async with alice_app.run_test(size=SIZE) as alice, \
            KernelClient(kernel.info, username="watcher") as watcher:
        await presence_ready(alice)
        a = alice_app.main_screen
        await watcher.wait_ready(TIMEOUT)
        a.editor.focus()
        await type_text(alice, "secret = 1")
        await wait_for(alice, lambda: a.drafts.sent == "secret = 1", "the draft shared")
        await alice.press("f4")
        assert not a.drafts.enabled and a.drafts.sent == ""
        await type_text(alice, "2")
        await alice.pause(0.5)
        assert a.drafts.sent == ""
        await alice.press("f4")
        assert a.drafts.sent == "secret = 12"


async def test_presence_is_joined_again_when_the_kernel_comes_back(kernel):
    alice_app = app_named(kernel, "alice")
    async with alice_app.run_test(size=SIZE) as alice:
        await presence_ready(alice)
        a = alice_app.main_screen
        await run_cell(alice, "print('before the kill')")
        a.editor.set_text("half = 'written'")
        await wait_for(alice, lambda: peer(a, "alice").draft == "half = 'written'", "the draft")
        first_comm = a.presence.comm_id
        await asyncio.to_thread(kernel.kill)
        await wait_for(alice, lambda: a.lifecycle == "dead", "the heartbeat lost", TIMEOUT)
        await asyncio.to_thread(kernel.relaunch)
        await wait_for(alice, lambda: a.lifecycle == "ok", "the kernel back", TIMEOUT)
        await wait_for(alice, lambda: a.presence.active and a.presence.comm_id != first_comm
                       and (peer(a, "alice") or None) is not None
                       and peer(a, "alice").kind == "ipytui"
                       and peer(a, "alice").draft == "half = 'written'",
                       "alice rejoined with her draft", TIMEOUT)
        assert len(a.stream.cells) == 1  # a replay of the same cell is not shown twice


async def test_a_kernel_without_presence_keeps_the_header_peers(tmp_path):
    """ipykernel closes the unknown comm: no noise in the stream, peers from parent headers."""
    proc = KernelProcess(tmp_path, argv=IPYKERNEL_ARGV).start()
    try:
        alice_app = app_named(proc, "alice")
        async with alice_app.run_test(size=SIZE) as alice:
            await wait_ready(alice)
            a = alice_app.main_screen
            await wait_for(alice, lambda: a.presence.supported is False, "the comm refused", TIMEOUT)
            async with KernelClient(proc.info, username="bob") as bob:
                await bob.wait_ready(TIMEOUT)
                await bob.execute("print('hi from bob')", timeout=TIMEOUT)
            await wait_for(alice, lambda: "hi from bob" in a.stream.plain, "bob's output", TIMEOUT)
            await wait_for(alice, lambda: "bob: idle" in a.peers_panel.plain, "bob", TIMEOUT)
            assert "comm" not in a.stream.plain
            await type_text(alice, "draft")
            await alice.pause(0.5)
            assert a.drafts.sent == ""  # nothing is sent to a kernel that refused the comm
    finally:
        proc.stop()


def test_snapshot_peers_panel(kernel, snap_compare, monkeypatch):
    """Alice's panel with Bob (an ipytui peer, typing) and carol (a plain Jupyter client)."""
    monkeypatch.setattr(socket, "gethostname", lambda: "laptop")
    # Sessions are random: pin what derives from them, and the terminal, for a stable image.
    monkeypatch.setattr("ipytui.app.presence_link.terminal_tag", lambda: "pts/1")
    monkeypatch.setattr("ipytui.widgets.peer_model.peer_colour", lambda session: 1)
    monkeypatch.setattr("ipytui.widgets.cell_view.peer_colour", lambda session: 1)
    clients = []
    for username in ("bob", "carol"):
        client = BlockingKernelClient()
        client.load_connection_info(kernel.info.to_dict())
        client.session.username = username
        client.start_channels()
        client.wait_for_ready(timeout=TIMEOUT)
        clients.append(client)
    bob, _carol = clients

    def to_comm(msg_type: str, content: dict) -> None:
        bob.shell_channel.send(bob.session.msg(msg_type, content))

    to_comm("comm_open", {"comm_id": "c0ffee", "target_name": "ipytui.presence",
                          "data": {"name": "Bob", "kind": "ipytui", "host": "workstation",
                                   "tag": "pts/2"}})
    bob.execute_interactive("total = sum(range(10))\nprint(total)", timeout=TIMEOUT,
                            output_hook=lambda msg: None)
    to_comm("comm_msg", {"comm_id": "c0ffee", "data": {
        "type": "draft", "text": "def mean(xs):\n    return sum(xs) / len(xs)", "cursor": 1}})

    async def run_before(pilot):
        await presence_ready(pilot)
        screen = pilot.app.main_screen
        await wait_for(pilot, lambda: state_of(screen, "Bob") == "typing", "Bob typing", TIMEOUT)
        await wait_for(pilot, lambda: peer(screen, "carol") is not None, "carol", TIMEOUT)
        await wait_for(pilot, lambda: "45" in screen.stream.plain, "Bob's replayed cell", TIMEOUT)
        screen.peers_panel.select_peer(peer(screen, "Bob").session)
        await wait_for(pilot, lambda: "def mean" in screen.peers_panel.detail.plain, "the draft")
        await wait_for(pilot, lambda: screen.status.state == "idle", "an idle kernel")
        await pilot.pause(0.2)

    try:
        assert snap_compare(app_named(kernel, "alice"), terminal_size=SIZE, run_before=run_before)
    finally:
        for client in clients:
            client.stop_channels()


class _Msg:
    def __init__(self, msg_type, content, parent_header=None):
        self.msg_type, self.content, self.parent_header = msg_type, content, parent_header or {}


def test_presence_model_ignores_junk_and_labels_states():
    from ipytui.app.presence import Presence

    presence = Presence(own_session="me", comm_id="c")
    assert not presence.owns(_Msg("comm_msg", {"comm_id": "other", "data": {}}))
    update = presence.apply([
        _Msg("comm_msg", {"comm_id": "c", "data": "not a dict"}),
        _Msg("comm_msg", {"comm_id": "c", "data": {"type": "replay", "cells": [{"code": "1"}, 5]}}),
        _Msg("comm_msg", {"comm_id": "c", "data": {"type": "peers", "peers": [
            {"session": "me", "display_name": "alice", "state": "idle"},
            {"session": "b", "display_name": "Bob", "state": "running", "cell": 3,
             "kind": "ipytui", "host": "h", "recent": ["x = 1", 7]},
            "junk"], "queue": [{"session": "b", "state": "running", "cell": 3}, "junk"]}}),
    ])
    assert presence.active and update.peers_changed and update.replay == [{"code": "1"}]
    peers = {p.name: p for p in presence.panel_peers()}
    assert peers["alice"].is_self and peers["Bob@h"].state == "running cell [3]"
    assert peers["Bob@h"].recent == ["x = 1"]
    assert [(q.name, q.state, q.cell) for q in presence.panel_queue()] == [("Bob@h", "running", 3)]
    assert presence.about_comm(_Msg("stream", {}, {"session": "me", "msg_type": "comm_open"}))
    assert not presence.about_comm(_Msg("stream", {}, {"session": "b", "msg_type": "comm_open"}))
    assert presence.apply([_Msg("comm_close", {"comm_id": "c"})]).closed and not presence.active


def test_draft_share_sends_changes_only_and_clips():
    from ipytui.app.presence import MAX_DRAFT, DraftShare

    share = DraftShare()
    assert share.due("") is None
    assert share.due("a", 0) == {"type": "draft", "text": "a", "cursor": 0}
    assert share.due("a", 0) is None
    assert share.due("a\nb", 1)["cursor"] == 1
    assert share.due("a\nb", 0) == {"type": "draft", "text": "a\nb", "cursor": 0}  # cursor moved
    big = share.due("é" * MAX_DRAFT)
    assert big is not None and len(big["text"].encode()) <= MAX_DRAFT
    share.enabled = False
    assert share.due("anything", 0) == {"type": "draft", "text": ""}
    assert share.due("more", 3) is None


def test_labels_tell_two_uis_of_one_user_apart():
    from ipytui.app.presence import Presence

    presence = Presence(own_session="s1")
    presence.peers = [
        {"session": "s1", "display_name": "root", "host": "vm", "tag": "pts/1"},
        {"session": "s2", "display_name": "root", "host": "vm", "tag": "pts/2"},
        {"session": "s3aa", "display_name": "root", "host": "vm"},
        {"session": "s4bb", "display_name": "root", "host": "vm"},
    ]
    names = presence.names()
    assert names["s1"] == "root@vm pts/1" and names["s2"] == "root@vm pts/2"
    assert names["s3aa"] == "root@vm #s3aa" and names["s4bb"] == "root@vm #s4bb"
    assert len(set(names.values())) == 4
