"""The TUI under the Pilot, against a real kernel subprocess."""

from __future__ import annotations

import asyncio

import pytest
from ipytui.app.config import Config
from ipytui.app.confirm_screen import ConfirmScreen
from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.widgets.mimebundle import RECOVERY_MIME
from ipytui.widgets.peer_model import peer_colour
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
from textual import events


def outputs_text(cell) -> str:
    return "\n".join(output.plain for output in cell.outputs())


@pytest.fixture
def kernel(tmp_path):
    proc = KernelProcess(tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
def respawning_kernel(tmp_path):
    """A kernel that comes back after it exits (restart, kill), as a supervisor would."""
    proc = KernelProcess(tmp_path, respawn=USES_IPYKERNEL).start()
    yield proc
    proc.stop()


async def test_cell_runs_and_output_shows(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("print('hello from the cell')\n6 * 7")
        await pilot.press("f5")
        await wait_for(pilot, lambda: "Out[1]: 42" in screen.stream.plain, "the result")
        cell = next(iter(screen.stream.cells.values()))
        assert "hello from the cell" in cell.plain
        assert cell.own and cell.has_class("-own")
        assert cell.header_text().plain.startswith("In [1] · alice (you)")
        assert screen.editor.text == ""
        await wait_for(pilot, lambda: screen.status.state == "idle", "idle state")
        assert screen.status.execution_count == 1


async def test_enter_runs_complete_code_and_indents_incomplete(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        editor = screen.editor
        editor.set_text("for i in range(3):")
        await pilot.press("enter")
        await wait_for(pilot, lambda: editor.text == "for i in range(3):\n    ", "an indented line")
        assert not screen.stream.cells
        editor.insert("print(i * 11)")
        await pilot.press("enter")
        # Still inside the block: a new indented line, then an empty Enter runs it.
        await wait_for(pilot, lambda: editor.text.endswith("print(i * 11)\n    "), "a second line")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "22" in screen.stream.plain, "the loop's output")
        assert screen.editor.text == ""


async def test_error_shows_traceback_and_marks_the_cell(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        cell = await run_cell(pilot, "1 / 0")
        assert cell.status == "error"
        assert "ZeroDivisionError" in cell.plain
        assert cell.has_class("-failed")


async def test_completion_menu_inserts_a_match(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "alpha_one = 1\nalpha_two = 2")
        editor = screen.editor
        editor.set_text("alpha_")
        await pilot.press("tab")
        menu = screen.menu
        await wait_for(pilot, lambda: menu.has_class("-open"), "the completion menu")
        texts = [item.text for item in menu.items]
        assert texts[:2] == ["alpha_one", "alpha_two"]
        await pilot.press("down")
        await wait_for(pilot, lambda: menu.highlighted == 1, "the second item highlighted")
        await pilot.press("enter")
        await wait_for(pilot, lambda: editor.text == "alpha_two", "the chosen match inserted")
        assert not menu.has_class("-open")
        assert not screen.stream.running_cells()


async def test_completion_single_match_completes_inline(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "zebra_unique_name = 3")
        screen.editor.set_text("zebra_uni")
        await pilot.press("tab")
        await wait_for(
            pilot, lambda: screen.editor.text == "zebra_unique_name", "the only match inserted"
        )


async def test_typing_narrows_the_open_menu(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "beta_a1 = 1\nbeta_a2 = 2\nbeta_b = 3")
        screen.editor.set_text("beta_")
        await pilot.press("tab")
        menu = screen.menu
        await wait_for(pilot, lambda: len(menu.items) == 3, "three matches")
        await pilot.press("b")
        await wait_for(pilot, lambda: [i.text for i in menu.items] == ["beta_b"], "one match left")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not menu.has_class("-open"), "the menu closed")
        assert screen.editor.text == "beta_b"


async def test_ctrl_j_breaks_the_line_where_it_was_typed(kernel):
    """Keys typed right after Ctrl+J (a paste without bracketed paste, a busy screen)
    go after the line break, not before it."""
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        editor = app.main_screen.editor
        # All at once, as the terminal driver posts a burst of keys (pilot.press waits).
        for key, char in (("p", "p"), ("ctrl+j", "\n"), ("q", "q"), ("alt+enter", None), ("r", "r")):
            app.post_message(events.Key(key, char))
        await wait_for(pilot, lambda: "r" in editor.text, "the keys handled")
        assert editor.text == "p\nq\nr"


@pytest.mark.skipif(USES_IPYKERNEL, reason="Enter decides locally only for an ipytui kernel")
async def test_keys_typed_right_after_enter_go_to_the_next_input(kernel):
    """Enter acts at once (the kernel's verdict, computed here), so keys that follow it
    in a burst neither cancel it nor join the line it ran or broke."""
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        editor = screen.editor
        editor.set_text("if True:")
        for key, char in (("enter", "\r"), ("x", "x")):
            app.post_message(events.Key(key, char))
        await wait_for(pilot, lambda: editor.text.endswith("x"), "the keys handled")
        assert editor.text == "if True:\n    x"
        editor.set_text("%time answer = 6 * 7")
        for key, char in (("enter", "\r"), ("y", "y")):
            app.post_message(events.Key(key, char))
        await wait_for(pilot, lambda: "answer = 6 * 7" in screen.stream.plain, "the cell run")
        assert editor.text == "y"


async def test_history_recall_with_up_and_down(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        editor = screen.editor
        await run_cell(pilot, "first = 1")
        await run_cell(pilot, "second = 2")
        editor.set_text("dra")
        await pilot.press("up")
        assert editor.text == "second = 2"
        await pilot.press("up")
        assert editor.text == "first = 1"
        await pilot.press("down")
        assert editor.text == "second = 2"
        await pilot.press("down")
        assert editor.text == "dra"


async def test_history_comes_from_the_kernel_across_sessions(kernel):
    async with KernelClient(kernel.info, username="earlier") as client:
        await client.wait_ready(20)
        await client.execute("from_an_earlier_session = 1", timeout=20)
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        editor = app.main_screen.editor
        await wait_for(
            pilot, lambda: "from_an_earlier_session = 1" in editor.input_history, "kernel history"
        )
        await pilot.press("up")
        assert editor.text == "from_an_earlier_session = 1"


async def test_reverse_history_search(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "needle = 'found'")
        await run_cell(pilot, "other = 0")
        await pilot.press("ctrl+r")
        search = screen.query_one("#history-search")
        await wait_for(pilot, lambda: search.is_open, "the search bar")
        await pilot.press("n", "e", "e", "d")
        await wait_for(pilot, lambda: search.match == "needle = 'found'", "the match")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.editor.text == "needle = 'found'", "the entry taken")
        assert not search.is_open
        assert screen.focused is screen.editor


async def test_interrupt_a_sleeping_cell(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("import time\ntime.sleep(60)")
        await pilot.press("f5")
        await wait_for(
            pilot, lambda: [c for c in screen.stream.cells.values() if c.running], "a running cell"
        )
        assert screen.status.state == "busy"
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: "KeyboardInterrupt" in screen.stream.plain, "the interrupt")
        cell = next(iter(screen.stream.cells.values()))
        await wait_for(pilot, lambda: cell.status == "error", "the cell to end")
        await wait_for(pilot, lambda: screen.status.state == "idle", "idle again")


async def test_input_in_a_cell_is_answered_from_the_prompt(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("name = input('your name? ')\nprint('hello', name)")
        await pilot.press("f5")
        prompt = screen.query_one("#input-prompt")
        await wait_for(pilot, lambda: prompt.is_open, "the input prompt")
        assert prompt.prompt == "your name? "
        await pilot.press("b", "o", "b", "enter")
        await wait_for(pilot, lambda: "hello bob" in screen.stream.plain, "the answer used")
        assert "your name? bob" in screen.stream.plain
        assert not prompt.is_open and screen.focused is screen.editor


async def test_interrupt_abandons_a_pending_input(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("input('never answered: ')")
        await pilot.press("f5")
        prompt = screen.query_one("#input-prompt")
        await wait_for(pilot, lambda: prompt.is_open, "the input prompt")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not prompt.is_open, "the prompt closed")
        cell = next(iter(screen.stream.cells.values()))
        await wait_for(pilot, lambda: cell.status == "error", "the cell interrupted")
        assert "KeyboardInterrupt" in cell.plain or "Interrupt" in cell.plain


async def test_ctrl_c_clears_the_input_when_nothing_runs(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        # ipykernel reports busy around its start-up requests: Ctrl+C would interrupt.
        await wait_for(pilot, lambda: screen.status.state == "idle", "idle")
        screen.editor.set_text("something half typed")
        await pilot.press("ctrl+c")
        assert screen.editor.text == ""
        assert not screen.stream.cells


async def test_restart_gives_a_fresh_namespace_and_keeps_the_draft(respawning_kernel):
    app = make_app(respawning_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "before_restart = 5")
        screen.editor.set_text("my_unsent_draft = 1")
        await pilot.press("f8")
        # The namespace holds a name: F8 asks first, and n keeps it.
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, "the question gone")
        assert screen.status.restarts == 0
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.status.restarts == 1, "the restart to be counted")
        await wait_ready(pilot)
        assert screen.editor.text == "my_unsent_draft = 1"
        assert "before_restart = 5" in screen.stream.plain  # scrollback kept
        cell = await run_cell(pilot, "before_restart")
        assert "NameError" in cell.plain
        assert cell.execution_count == 1


async def test_kernel_death_shows_the_banner_and_keeps_draft_and_scrollback(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "print('still here after the crash')")
        screen.editor.set_text("half = 'written'")
        await asyncio.to_thread(kernel.kill)
        await wait_for(pilot, lambda: screen.banner.is_open, "the banner")
        assert "heartbeat lost" in screen.banner.plain
        assert screen.status.state == "dead"
        assert screen.editor.text == "half = 'written'"
        assert "still here after the crash" in screen.stream.plain
        await asyncio.to_thread(kernel.relaunch)  # what a supervisor does
        await wait_for(pilot, lambda: screen.lifecycle == "ok", "the kernel back", timeout=60)
        await wait_for(pilot, lambda: not screen.banner.is_open, "the banner to go")
        assert screen.editor.text == "half = 'written'"
        assert "still here after the crash" in screen.stream.plain


async def test_quitting_after_the_kernel_died_says_so(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await asyncio.to_thread(kernel.kill)
        await wait_for(pilot, lambda: app.main_screen.banner.is_open, "the banner")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value.kernel_responding is False  # so the goodbye does not say "still running"




async def test_worker_crash_on_the_ipytui_kernel_shows_its_report(ipytui_kernel):
    app = make_app(ipytui_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "kept = 41")
        screen.editor.set_text("import ctypes\nctypes.string_at(0)")
        await pilot.press("f5")
        screen.editor.set_text("my draft")  # typed while the kernel goes down

        def died():
            return [c for c in screen.stream.cells.values() if c.status == "died"]

        cell = (await wait_for(pilot, died, "the cell marked as died"))[0]
        assert "KernelDied" in cell.plain
        banner = screen.banner
        await wait_for(pilot, lambda: banner.kind == "crash" and "restored" in banner.plain, "the report")
        assert "segmentation fault" in banner.plain
        assert "kept" in banner.plain
        await wait_for(pilot, lambda: screen.lifecycle == "ok", "the kernel back")
        assert screen.editor.text == "my draft"
        assert "kept = 41" in screen.stream.plain
        after = await run_cell(pilot, "kept + 1")
        assert "Out[" in after.plain and "42" in after.plain
        assert screen.status.last_crash


async def test_restart_and_restore_on_the_ipytui_kernel(ipytui_kernel):
    app = make_app(ipytui_kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "survivor = [1, 2, 3]")
        screen.editor.set_text("unsent")
        await pilot.press("f9")
        await wait_for(pilot, lambda: screen.status.restarts == 1, "the restore to be counted")
        await wait_ready(pilot)
        cell = await run_cell(pilot, "survivor")
        assert "[1, 2, 3]" in cell.plain
        assert screen.editor.text == ""  # run_cell replaced the draft on purpose


async def test_restore_on_a_kernel_without_it_says_so(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("still here")
        if not USES_IPYKERNEL:
            pytest.skip("our kernel supports restore")
        from ipytui.app import lifecycle

        lifecycle.REQUEST_TIMEOUT, saved = 2.0, lifecycle.REQUEST_TIMEOUT
        try:
            await pilot.press("f9")
            await wait_for(pilot, lambda: screen.lifecycle == "restarting", "restarting")
            await wait_for(pilot, lambda: screen.lifecycle == "ok", "back to ok")
        finally:
            lifecycle.REQUEST_TIMEOUT = saved
        assert screen.status.restarts == 0
        assert screen.editor.text == "still here"


async def test_recovery_report_shows_as_banner(kernel):
    report = {
        "cause": "SIGSEGV (segmentation fault)",
        "cell": {"execution_count": 3, "username": "bob", "code": "ctypes.string_at(0)"},
        "restored": ["df", "model", "f"],
        "lost": {"gen": "not in the snapshot"},
        "seconds": 0.42,
    }
    code = DISPLAY_PRELUDE + (
        f"display({{{RECOVERY_MIME!r}: {report!r}, 'text/plain': 'kernel restored'}}, raw=True)"
    )
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("draft survives")
        async with KernelClient(kernel.info, username="kernel") as client:
            await client.wait_ready(20)
            await client.execute(code, timeout=20)
        banner = screen.banner
        await wait_for(pilot, lambda: banner.is_open, "the recovery banner")
        assert "Kernel crashed: SIGSEGV" in banner.plain
        assert "In [3] run by bob" in banner.plain
        assert "restored 3 names" in banner.plain and "df, model, f" in banner.plain
        assert "gen (not in the snapshot)" in banner.plain
        assert screen.status.last_crash.startswith("SIGSEGV")
        assert screen.editor.text == "draft survives"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not banner.is_open, "the banner dismissed")


async def test_cell_from_a_second_client_is_attributed(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        async with KernelClient(kernel.info, username="bob") as bob:
            await bob.wait_ready(20)
            await bob.execute("print('hi from bob')", timeout=20)
            bob_session = bob.codec.session
            # While bob is attached: with presence (our kernel) he leaves the panel when he goes.
            peers = screen.peers_panel
            await wait_for(pilot, lambda: "bob: idle" in peers.plain, "bob in the peers panel")
            mine = next(p for p in peers.peers if p.is_self)
            assert mine.name.startswith("alice@") and f"{mine.name} (you)" in peers.plain

        def bobs_cell():
            return [c for c in screen.stream.cells.values() if c.who == "bob"]

        cells = await wait_for(pilot, bobs_cell, "bob's cell")
        cell = cells[0]
        await wait_for(pilot, lambda: "hi from bob" in cell.plain, "bob's output")
        assert not cell.own and cell.has_class("-peer")
        assert cell.has_class(f"-peer-{peer_colour(bob_session)}")  # his colour, as in the panel
        assert cell.session == bob_session
        assert "In [1] · bob" in cell.header_text().plain


async def test_help_pane_with_f1_and_question_mark(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("len")
        await pilot.press("f1")
        pane = screen.help_pane
        await wait_for(pilot, lambda: pane.is_open, "the help pane")
        assert "Return the number of items" in pane.plain, pane.plain
        assert screen.editor.text == "len"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not pane.is_open, "the pane closed")
        screen.editor.set_text("sorted?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.is_open and "sorted" in pane.plain, "help for sorted")
        assert not screen.stream.cells


async def test_reply_payloads_page_fill_the_editor_and_exit(kernel, tmp_path):
    """A cell's reply can page text, fill the next input (%load) or ask the client to leave."""
    source = tmp_path / "snippet.py"
    source.write_text("loaded = 'from the file'\n")
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("import math\nmath.sqrt?")  # not a lone `name?`: the kernel pages it
        await pilot.press("f5")
        pane = screen.help_pane
        await wait_for(pilot, lambda: pane.is_open and "square root" in pane.plain, "the paged help")
        await pilot.press("escape")
        screen.editor.set_text(f"%load {source}")
        await pilot.press("f5")
        await wait_for(pilot, lambda: "loaded = 'from the file'" in screen.editor.text, "the loaded file")
        assert screen.editor.text.startswith("# %load")
        screen.editor.set_text("exit")  # bare, as in IPython
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value.kernel_shut_down is False  # exit leaves this client only
    assert kernel.proc.poll() is None


async def test_load_while_typing_keeps_the_draft(kernel, tmp_path):
    """%load fills the editor after what the user typed while the cell ran, losing nothing."""
    source = tmp_path / "snippet.py"
    source.write_text("loaded = 1\n")
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text(f"go = input('go? ')\n%load {source}")
        await pilot.press("f5")
        prompt = screen.query_one("#input-prompt")
        await wait_for(pilot, lambda: prompt.is_open, "the input prompt")
        screen.editor.set_text("my_draft = 2")  # typed while the cell runs
        await pilot.press("y", "enter")
        await wait_for(pilot, lambda: "loaded = 1" in screen.editor.text, "the loaded file")
        assert screen.editor.text.startswith("my_draft = 2\n# %load")


async def test_display_update_and_clear_output(kernel):
    code = (
        "display('first version', display_id='d1')\n"
        "update_display('second version', display_id='d1')\n"
        "print('gone soon')\n"
        "clear_output(wait=True)\n"
        "print('after clear')\n"
    )
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, DISPLAY_PRELUDE)
        cell = await run_cell(pilot, code)
        text = outputs_text(cell)
        assert "after clear" in text
        assert "gone soon" not in text and "first version" not in text


async def test_display_update_replaces_in_place(kernel):
    code = (
        "display('first version', display_id='d2')\n"
        "update_display('second version', display_id='d2')\n"
    )
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, DISPLAY_PRELUDE)
        cell = await run_cell(pilot, code)
        await wait_for(pilot, lambda: "second version" in outputs_text(cell), "the update")
        assert "first version" not in outputs_text(cell)


async def test_markdown_and_json_are_rendered(kernel):
    code = "display(Md('# Title\\n\\n*some* text'))\ndisplay(Js({'key': [1, 2]}))\n"
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, DISPLAY_PRELUDE)
        cell = await run_cell(pilot, code)
        outputs = [o for o in cell.outputs() if getattr(o, "kind", "") == "display"]
        assert len(outputs) == 2
        assert type(outputs[0].body).__name__ == "Markdown"
        assert '"key"' in outputs[1].plain


async def test_a_huge_print_is_bounded_and_typing_goes_on(kernel):
    config = Config(display_name="alice", scrollback_lines=2000)
    app = make_app(kernel, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        screen.editor.set_text("for i in range(200_000):\n    print(i)")
        await pilot.press("f5")
        await wait_for(pilot, lambda: screen.stream.cells, "the cell")
        cell = next(iter(screen.stream.cells.values()))
        await wait_for(pilot, lambda: cell.outputs(), "the first output")
        await pilot.press("x", "y", "z")  # keys are handled while output pours in
        assert screen.editor.text == "xyz"
        await wait_for(pilot, lambda: cell.status == "ok", "the print to finish", timeout=120)
        stream = cell.outputs()[0]
        assert stream.plain.endswith("199999")
        assert stream.line_count <= 2000 + 200
        assert stream.dropped >= 195_000
        assert "earlier lines dropped" in screen.stream.plain


async def test_scrolling_up_pauses_follow_and_end_resumes(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "for i in range(200):\n    print(i)")
        stream = screen.stream
        await wait_for(pilot, lambda: stream.max_scroll_y > 0, "a scrollable stream")
        assert stream.following
        await pilot.press("shift+pageup")
        await wait_for(pilot, lambda: not stream.following, "follow paused")
        assert stream.has_class("-paused")
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: stream.following, "follow resumed")


async def test_clear_output_and_toggle_peers(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        await run_cell(pilot, "print('to be cleared')")
        await pilot.press("ctrl+l")
        assert not screen.stream.cells
        assert screen.peers_panel.display
        await pilot.press("f3")
        await wait_for(pilot, lambda: not screen.peers_panel.display, "peers hidden")
        await pilot.press("f3")
        await wait_for(pilot, lambda: screen.peers_panel.display, "peers shown")


async def test_keys_screen_lists_every_action(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await pilot.press("f2")
        from ipytui.app.keys_screen import KeysScreen

        await wait_for(pilot, lambda: isinstance(app.screen, KeysScreen), "the keys page")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main_screen, "back to the main screen")


async def test_quit_leaves_the_kernel_running(kernel):
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value.kernel_shut_down is False
    assert kernel.proc.poll() is None
    async with KernelClient(kernel.info) as client:
        info = await client.wait_ready(20)
    assert info["status"] == "ok"


async def test_shutdown_on_exit_stops_the_kernel(kernel):
    app = make_app(kernel, shutdown_on_exit=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value.kernel_shut_down is True
    await asyncio.to_thread(kernel.proc.wait, 20)
    assert kernel.proc.returncode is not None


async def test_themes_switch(kernel):
    app = make_app(kernel, theme="light")
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "ipytui-light"
        app.theme = "ipytui-high-contrast"
        await pilot.pause()
        assert app.current_theme.name == "ipytui-high-contrast"


async def test_a_slow_start_says_it_is_waiting_then_clears(tmp_path, monkeypatch):
    """No answer for a while: a banner says so; the kernel answering later clears it."""
    from ipytui.app import lifecycle
    from ipytui.app.app import IpytuiApp

    monkeypatch.setattr(lifecycle, "SLOW_START", 0.2)
    kernel = KernelProcess(tmp_path)  # its connection file, nobody listening yet
    app = IpytuiApp(kernel.path, config=Config(display_name="alice"), deterministic=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.main_screen
            await wait_for(pilot, lambda: screen.banner.is_open, "the waiting banner")
            assert "Waiting for the kernel" in screen.banner.plain
            assert screen.status.state == "starting"
            await pilot.press("o", "k")
            assert screen.editor.text == "ok"
            await asyncio.to_thread(kernel.start)
            await wait_for(pilot, lambda: screen.lifecycle == "ok", "the kernel's answer", timeout=60)
            await wait_for(pilot, lambda: not screen.banner.is_open, "the banner gone")
    finally:
        kernel.stop()


async def test_an_unreachable_kernel_is_reported_and_typing_still_works(tmp_path, monkeypatch):
    from ipytui.app import lifecycle
    from ipytui.app.app import IpytuiApp
    from ipytui.kernel.protocol.connection import new_connection_info, write_connection_file

    monkeypatch.setattr(lifecycle, "READY_TIMEOUT", 2.0)
    path = write_connection_file(new_connection_info(), tmp_path / "nobody.json")
    app = IpytuiApp(path, config=Config(display_name="alice"), deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.main_screen
        assert screen.status.state == "starting"
        await wait_for(pilot, lambda: screen.banner.is_open, "the unreachable banner")
        assert "Cannot reach the kernel" in screen.banner.plain
        assert screen.status.state == "unreachable"
        await pilot.press("o", "k")
        assert screen.editor.text == "ok"
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
    assert app.return_value.kernel_responding is False  # never reached: not "still running"
