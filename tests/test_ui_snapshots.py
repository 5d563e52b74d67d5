"""Snapshots of the main screen at a fixed size, against a real kernel.

The app runs with ``deterministic=True``: no spinner, times, pids, memory or
versions on screen, no cursor blink, so a picture only changes when the look
does. Update after an intended change with ``pytest --snapshot-update``.
"""

from __future__ import annotations

import pytest
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.widgets.mimebundle import RECOVERY_MIME
from test_ui_support import (
    DISPLAY_PRELUDE,
    SIZE,
    USES_IPYKERNEL,
    KernelProcess,
    make_app,
    run_cell,
    wait_for,
    wait_ready,
)


@pytest.fixture(autouse=True)
def stable_peers(monkeypatch):
    """Pin what a peer label and colour derive from (host, terminal, random session)."""
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    monkeypatch.setattr("ipytui.app.presence_link.terminal_tag", lambda: "pts/1")
    monkeypatch.setattr("ipytui.widgets.peer_model.peer_colour", lambda session: 1)
    monkeypatch.setattr("ipytui.widgets.cell_view.peer_colour", lambda session: 1)


@pytest.fixture
def kernel(tmp_path):
    proc = KernelProcess(tmp_path).start()
    yield proc
    proc.stop()


async def _settle(pilot) -> None:
    """Wait until nothing runs and the kernel is idle, so the picture is final."""
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.status.state == "idle", "an idle kernel")
    await pilot.pause(0.1)


async def _define_display_helpers(client) -> None:
    """Md, Js, display… in the kernel, silently (no cell appears)."""
    await client.execute(DISPLAY_PRELUDE, silent=True, store_history=False, timeout=20)


async def _with_output(pilot) -> None:
    await wait_ready(pilot)
    await _define_display_helpers(pilot.app.main_screen.session.client)
    await run_cell(pilot, "print('hello, world')\nsum(range(10))")
    await run_cell(pilot, "Md('**bold** and *italic*')")
    await run_cell(pilot, "import sys\nprint('to stderr', file=sys.stderr)\n{'a': 1}")
    await run_cell(pilot, "1 / 0")
    await _settle(pilot)


def test_snapshot_idle(kernel, snap_compare):
    async def run_before(pilot):
        await wait_ready(pilot)
        await _settle(pilot)

    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=run_before)


def test_snapshot_with_output(kernel, snap_compare):
    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=_with_output)


async def _with_rich_output(pilot) -> None:
    """A picture in half blocks (red over blue), an HTML table, LaTeX."""
    await wait_ready(pilot)
    await run_cell(
        pilot,
        "import io\nfrom PIL import Image\n"
        "im = Image.new('RGB', (240, 80), (200, 30, 30))\n"
        "im.paste((30, 30, 200), (0, 40, 240, 80))\nim",
    )
    await run_cell(
        pilot,
        "class T:\n    def _repr_html_(self):\n"
        "        return ('<table><thead><tr><th></th><th>name</th><th>n</th></tr></thead>'\n"
        "                '<tbody><tr><th>0</th><td>ab</td><td>1</td></tr>'\n"
        "                '<tr><th>1</th><td>c</td><td>22.5</td></tr></tbody></table>')\n"
        "    def _repr_latex_(self):\n        return r'$\\alpha$'\nT()",
    )
    await _settle(pilot)


def test_snapshot_rich_output(kernel, snap_compare):
    pytest.importorskip("PIL", reason="Pillow makes the picture")
    from ipytui.app.config import Config

    config = Config(display_name="alice", scrollback_lines=5000, images="halfblock")
    app = make_app(kernel, config=config)
    assert snap_compare(app, terminal_size=SIZE, run_before=_with_rich_output)


def test_snapshot_completion_menu(kernel, snap_compare):
    async def run_before(pilot):
        await wait_ready(pilot)
        # IPython types completions within a time budget, then says "<unknown>":
        # give it all the time it needs so the picture does not depend on load.
        await pilot.app.main_screen.session.client.execute(
            "try:\n    get_ipython().Completer.jedi_compute_type_timeout = 60_000\n"
            "except NameError:\n    pass\n",
            silent=True,
            store_history=False,
            timeout=20,
        )
        await run_cell(
            pilot,
            "def alpha_func(x, y=2):\n    return x\n"
            "def alpha_sum(*values):\n    return sum(values)\n"
            "def alpha_max(a, b):\n    return max(a, b)",
        )
        screen = pilot.app.main_screen
        # Nothing under the menu: how Textual splits the covered lines into
        # segments varies from run to run, though they look the same.
        screen.action_clear_output()
        screen.editor.set_text("alpha_")
        for _ in range(5):
            await pilot.press("tab")
            await wait_for(pilot, lambda: screen.menu.has_class("-open"), "the completion menu")
            if all(item.type == "function" for item in screen.menu.items):
                break
            await pilot.press("escape")  # the kernel ran out of time typing them: ask again
        else:
            raise AssertionError("the kernel never gave the completions their types")
        await _settle(pilot)

    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=run_before)


def test_snapshot_help_pane(kernel, snap_compare):
    async def run_before(pilot):
        await wait_ready(pilot)
        screen = pilot.app.main_screen
        screen.editor.set_text("len")
        await pilot.press("f1")
        await wait_for(pilot, lambda: screen.help_pane.is_open, "the help pane")
        await _settle(pilot)

    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=run_before)


def test_snapshot_after_crash(kernel, snap_compare):
    report = {
        "cause": "SIGSEGV (segmentation fault)",
        "cell": {"execution_count": 2, "username": "alice", "code": "ctypes.string_at(0)"},
        "restored": ["data", "model", "helper"],
        "lost": {"stream": "open socket"},
        "seconds": 0.31,
    }
    publish = f"display({{{RECOVERY_MIME!r}: {report!r}, 'text/plain': 'restored 3 names'}}, raw=True)"

    async def run_before(pilot):
        await wait_ready(pilot)
        await run_cell(pilot, "data = [1, 2, 3]")
        screen = pilot.app.main_screen
        async with KernelClient(kernel.info, username="kernel") as client:
            await client.wait_ready(20)
            await _define_display_helpers(client)
            await client.execute(publish, timeout=20)
        await wait_for(pilot, lambda: screen.banner.is_open, "the banner")
        screen.editor.set_text("draft = 'kept'")
        if not USES_IPYKERNEL:  # the shared draft makes us "typing": wait for it, for one picture
            await wait_for(pilot, lambda: "(you): typing" in screen.peers_panel.plain, "typing")
        await _settle(pilot)

    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=run_before)


def test_snapshot_peer_cell(kernel, snap_compare):
    async def run_before(pilot):
        await wait_ready(pilot)
        await run_cell(pilot, "x = 'mine'")
        screen = pilot.app.main_screen
        async with KernelClient(kernel.info, username="bob") as bob:
            await bob.wait_ready(20)
            await bob.execute("print('hello from bob')", timeout=20)
        await wait_for(pilot, lambda: "hello from bob" in screen.stream.plain, "bob's output")
        if USES_IPYKERNEL:  # peers seen in parent headers stay listed
            await wait_for(pilot, lambda: "bob" in screen.peers_panel.plain, "bob in the panel")
        else:  # with presence, bob has left the panel; his cell stays attributed to him
            await wait_for(pilot, lambda: "bob" not in screen.peers_panel.plain, "bob gone")
        await _settle(pilot)

    assert snap_compare(make_app(kernel), terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("theme", ["light", "high-contrast"])
def test_snapshot_themes(kernel, snap_compare, theme):
    assert snap_compare(make_app(kernel, theme=theme), terminal_size=SIZE, run_before=_with_output)


@pytest.mark.parametrize("width", [80, 120])
def test_snapshot_footer(kernel, snap_compare, width):
    """The footer shows the way out (^Q Quit) at 80 and 120 columns."""
    from textual.widgets._footer import FooterKey

    async def run_before(pilot):
        await wait_ready(pilot)
        await _settle(pilot)
        keys = {key.description: key for key in pilot.app.main_screen.query(FooterKey)}
        assert "Quit" in keys, sorted(keys)
        quit_key = keys["Quit"].region
        assert quit_key.width > 0 and quit_key.right <= width, quit_key

    assert snap_compare(make_app(kernel), terminal_size=(width, 24), run_before=run_before)
