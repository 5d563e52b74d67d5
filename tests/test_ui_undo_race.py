"""F10 names the cell its question showed (issue 22): a peer's cell that finishes
while the question is open is not taken back. The real app (Pilot) on the real
ipytui kernel, a second real client as the peer."""

from __future__ import annotations

import pytest
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




async def test_a_peer_cell_finished_during_the_question_is_not_undone(ipytui_kernel):
    app = make_app(ipytui_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "a = [1]")
        async with KernelClient(ipytui_kernel.info, username="bob") as bob:
            await bob.wait_ready(20)
            assert (await bob.execute("a.append(5)", timeout=20)).status == "ok"
            await wait_for(
                pilot,
                lambda: any(
                    c.who == "bob" and c.status == "ok" for c in screen.stream.cells.values()
                ),
                "bob's cell",
            )
            await pilot.press("f10")
            dialog = await wait_for(
                pilot,
                lambda: isinstance(app.screen, UndoConfirmScreen) and app.screen,
                "the question",
            )
            assert "run by bob" in dialog.question and "a.append(5)" in dialog.question
            # While alice reads the question, bob's next cell finishes: "y" must not take
            # it back (a plain %undo would undo that one instead of the one she saw).
            assert (await bob.execute("a.append(6)", timeout=20)).status == "ok"
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: "changed the state after this undo was chosen" in screen.stream.plain,
                "the refusal, naming bob's cell",
            )
        assert "(by bob)" in screen.stream.plain
        assert "[1, 5, 6]" in (await run_cell(pilot, "a")).plain
        await pilot.press("f10")  # bob's newest cell, asked about, then undone
        await wait_for(pilot, lambda: isinstance(app.screen, UndoConfirmScreen), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: "Undo by alice" in screen.stream.plain, "the undo entry")
        assert "[1, 5]" in (await run_cell(pilot, "print(a)")).plain


def test_the_undo_codes_name_the_cells_shown() -> None:
    from types import SimpleNamespace

    from ipytui.app import timeline_screen, undo_screen

    assert undo_screen.undo_code(SimpleNamespace(execution_count=7)) == "%undo --to 7 --last 7"
    assert undo_screen.undo_code(SimpleNamespace(execution_count=None)) == "%undo"
    assert timeline_screen.undo_code([4, 6, 9], 3) == "%undo --to 4 --last 9"
    assert timeline_screen.undo_code([], 2) == "%undo 2"
