"""The status pane shows the kernel's protection level and restore point (issue 13),
and F10 undoes the last cell, asking first for a peer's (issue 22): the real app
(Pilot) on the real ipytui kernel, a second real client as the peer."""

from __future__ import annotations

import pytest
from ipytui.app.undo_screen import UndoConfirmScreen
from ipytui.kernel.client.kernel_client import KernelClient
from test_ui_support import (
    IPYTUI_KERNEL_ARGV,
    SIZE,
    KernelProcess,
    make_app,
    run_cell,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ipytui_kernel(tmp_path):
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    yield kernel
    kernel.stop()


async def test_status_pane_shows_the_level_and_the_restore_point(ipytui_kernel):
    app = make_app(ipytui_kernel, deterministic=False)  # restore points are volatile fields
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        label = screen.status.query_one("#ks-protection")
        await run_cell(pilot, "a = 1")
        await wait_for(pilot, lambda: "⛨ cell" in screen.status.plain, "the protection level")
        await run_cell(pilot, "%protection off")
        await wait_for(pilot, lambda: "⛨ off" in screen.status.plain, "the level off")
        assert label.has_class("-unprotected")
        await run_cell(pilot, "%protection cell")
        await run_cell(pilot, "b = 2")
        await wait_for(pilot, lambda: "⛨ cell" in screen.status.plain
                       and "point [" in screen.status.plain, "a restore point shown")
        assert not label.has_class("-unprotected")


async def test_f10_undoes_the_last_cell_and_asks_first_for_a_peers(ipytui_kernel):
    app = make_app(ipytui_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "a = [1]")
        await run_cell(pilot, "a.append(2)")
        await pilot.press("f10")  # our own cell: no question
        await wait_for(pilot, lambda: "Undo by alice" in screen.stream.plain, "the undo entry")
        assert "[1]" in (await run_cell(pilot, "a")).plain
        async with KernelClient(ipytui_kernel.info, username="bob") as bob:
            await bob.wait_ready(20)
            assert (await bob.execute("a.append(5)", timeout=20)).status == "ok"
        await wait_for(pilot, lambda: any(c.who == "bob" and c.status == "ok"
                                          for c in screen.stream.cells.values()), "bob's cell")
        await pilot.press("f10")
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, UndoConfirmScreen)
                                and app.screen, "the question")
        assert "run by bob" in dialog.question and "a.append(5)" in dialog.question
        await pilot.press("n")  # kept
        await wait_for(pilot, lambda: not isinstance(app.screen, UndoConfirmScreen), "no question")
        assert "[1, 5]" in (await run_cell(pilot, "a")).plain  # inert: F10 still means bob's cell
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, UndoConfirmScreen), "the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.stream.plain.count("Undo by alice") == 2,
                       "the second undo entry")
        assert "[1]" in (await run_cell(pilot, "a")).plain
