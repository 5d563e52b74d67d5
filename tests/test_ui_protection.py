"""The status pane shows the kernel's protection level and restore point (issue 13),
and F10 undoes the last cell, asking first for a peer's (issue 22): the real app
(Pilot) on the real ipytui kernel, a second real client as the peer."""

from __future__ import annotations

import pytest
from ipytui.app.timeline_screen import TimelineScreen
from ipytui.app.undo_screen import UndoConfirmScreen
from ipytui.kernel.client.kernel_client import KernelClient
from test_ui_support import (
    SIZE,
    make_app,
    run_cell,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.timeout(120)




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


def _rows(app) -> list[str]:
    """The timeline screen's rows as shown (empty while it is not open)."""
    from textual.widgets import OptionList

    if not isinstance(app.screen, TimelineScreen):
        return []
    points = app.screen.query_one("#timeline-points", OptionList)
    return [str(points.get_option_at_index(i).prompt) for i in range(points.option_count)]


async def test_ctrl_t_timeline_updates_live_and_undoes_to_a_chosen_point(ipytui_kernel, monkeypatch):
    # The usage poll (which carries the timeline too) answers once at start, then not
    # again in this test: every later row comes from the kernel's timeline events.
    monkeypatch.setattr("ipytui.app.lifecycle.USAGE_SECONDS", 3600.0)
    app = make_app(ipytui_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        for value in (1, 2, 3):
            await run_cell(pilot, f"t = {value}")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: any("%undo 2" in r and "after In [1]" in r
                                          for r in _rows(app)), "the points of alice's cells")
        rows = _rows(app)
        assert "by alice" in rows[0] and "changed: t" in rows[0], rows
        assert "current" in rows[-1] and "after In [3]" in rows[-1], rows
        # bob's cell, run while the screen is open, comes in through the kernel's event
        async with KernelClient(ipytui_kernel.info, username="bob") as bob:
            await bob.wait_ready(20)
            assert (await bob.execute("t = 4", timeout=20)).status == "ok"
        await wait_for(pilot, lambda: any("current" in r and "after In [4]" in r and "by bob" in r
                                          for r in _rows(app)), "bob's point, live")
        await wait_for(pilot, lambda: any(c.who == "bob" and c.status == "ok"
                                          for c in screen.stream.cells.values()), "bob's cell")
        points = app.screen.query_one("#timeline-points")
        points.highlighted = next(i for i, r in enumerate(_rows(app)) if "after In [1]" in r)
        await pilot.press("enter")  # %undo 3 takes back bob's In [4]: asked first
        dialog = await wait_for(pilot, lambda: isinstance(app.screen, UndoConfirmScreen)
                                and app.screen, "the question")
        assert "In [4] run by bob" in dialog.question and "t = 4" in dialog.question
        assert "In [2]" not in dialog.question  # alice's own cells need no question
        await pilot.press("y")
        await wait_for(pilot, lambda: "Undo by alice" in screen.stream.plain, "the undo entry")
        assert not isinstance(app.screen, (TimelineScreen, UndoConfirmScreen))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: _rows(app) and all(
            "after In [1]" in r and "current" in r for r in _rows(app)),
            "the timeline after the undo: only the restored point, nothing older kept")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, TimelineScreen), "closed")
        assert "1" in (await run_cell(pilot, "print(t)")).plain
