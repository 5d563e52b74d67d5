"""The UI's pure parts, without a kernel: parsing, merging, rendering decisions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ipytui.app.assist import local_is_complete
from ipytui.app.cli import build_parser, goodbye
from ipytui.app.completion import common_prefix, filter_items, items_from_reply, still_completing
from ipytui.app.config import MIN_SCROLLBACK, load_config, parse_config
from ipytui.app.iopub import coalesce_streams, help_query, name_at
from ipytui.themes import THEMES, resolve_theme_name
from ipytui.widgets.crash_banner import describe_report
from ipytui.widgets.input_editor import local_indent
from ipytui.widgets.kernel_status import format_bytes, format_uptime
from ipytui.widgets.mimebundle import (
    RECOVERY_MIME,
    ansi_text,
    plain_of,
    raw_plain,
    render_bundle,
    render_traceback,
)
from ipytui.widgets.python_highlight import python_highlights, python_lexer
from ipytui.widgets.stream_output import StreamOutput, _fold, _rows
from rich.text import Text


def msg(msg_type, parent="p1", **content):
    return SimpleNamespace(
        msg_type=msg_type,
        parent_id=parent,
        parent_header={"msg_id": parent, "session": "s"},
        content=content,
    )


# -- burst merging -------------------------------------------------------------------
def test_coalesce_merges_runs_of_one_stream_only():
    batch = [
        msg("stream", name="stdout", text="a\n"),
        msg("stream", name="stdout", text="b\n"),
        msg("stream", name="stderr", text="e\n"),
        msg("stream", name="stdout", text="c\n"),
        msg("execute_result", data={}),
        msg("stream", name="stdout", text="d\n"),
        msg("stream", parent="p2", name="stdout", text="x\n"),
    ]
    merged = coalesce_streams(batch)
    assert [(m.msg_type, m.content.get("text")) for m in merged] == [
        ("stream", "a\nb\n"),
        ("stream", "e\n"),
        ("stream", "c\n"),
        ("execute_result", None),
        ("stream", "d\n"),
        ("stream", "x\n"),
    ]
    assert batch[0].content["text"] == "a\n"  # the input messages are not modified


def test_coalesce_a_flood_becomes_one_message():
    batch = [msg("stream", name="stdout", text=f"{i}\n") for i in range(10_000)]
    merged = coalesce_streams(batch)
    assert len(merged) == 1
    assert merged[0].content["text"].count("\n") == 10_000


# -- stream output -------------------------------------------------------------------
def test_stream_output_joins_partial_lines_and_honours_carriage_returns():
    out = StreamOutput(max_lines=100)
    out.append("hel")
    out.append("lo\nprogress 10%\rprogress 50%\r")
    assert out.plain == "hello\nprogress 50%"
    out.append("progress 100%\ndone\n")
    assert out.plain == "hello\nprogress 100%\ndone"
    assert out.line_count == 3


def test_stream_output_is_bounded_and_counts_what_it_dropped():
    out = StreamOutput(max_lines=1000)
    dropped = out.append("".join(f"{i}\n" for i in range(5000)))
    assert dropped == 4000 and out.dropped == 4000
    assert out.plain.splitlines()[0] == "4000"
    for _ in range(3):
        out.append("".join(f"{i}\n" for i in range(600)))
    assert out.line_count <= 1000 + max(100, 1000 // 10)
    assert out.dropped == 5000 + 1800 - out.line_count


def test_stream_output_keeps_ansi_colours():
    out = StreamOutput()
    out.append("\x1b[31mred\x1b[0m plain\n")
    assert out.plain == "red plain"
    assert isinstance(out._lines[0], Text)
    assert out._lines[0].spans


def test_osc_sequences_ended_by_bel_leave_no_residue():
    """A window title or hyperlink sequence from a program's output shows as nothing
    (or as its link text), in the stream and in rich output alike."""
    raw = "a \x1b]0;my title\x07b \x1b]8;;https://x.org\x07link\x1b]8;;\x07 c\n"
    out = StreamOutput()
    out.append(raw)
    assert out.plain == "a b link c"
    text = ansi_text(raw.rstrip())
    assert text.plain == "a b link c"
    assert any(span.style.link == "https://x.org" for span in text.spans)


def test_rows_and_fold_agree():
    from rich.console import Console

    console = Console(width=80)
    for line in ["", "x" * 10, "y" * 25, Text("z" * 41), "wide 日本語 " * 5]:
        for width in (7, 10, 40):
            assert len(_fold(line, width, console)) == _rows(line, width)


# -- completion ------------------------------------------------------------------------
def test_completion_items_carry_type_and_signature():
    reply = {
        "matches": ["alpha", "alphabet", "alpha"],
        "metadata": {
            "_jupyter_types_experimental": [
                {"text": "alpha", "type": "function", "signature": "(x)"},
                {"text": "alphabet", "type": "instance"},
            ]
        },
    }
    items = items_from_reply(reply)
    assert [(i.text, i.type, i.signature) for i in items] == [
        ("alpha", "function", "(x)"),
        ("alphabet", "instance", ""),
    ]
    assert common_prefix(items) == "alpha"
    assert [i.text for i in filter_items(items, "alphab")] == ["alphabet"]
    assert [i.text for i in filter_items(items, "ALPHAB")] == ["alphabet"]
    assert still_completing("alpha.be") and not still_completing("alpha(")


# -- input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ("x = 1", "complete"),
        ("for i in x:", "incomplete"),
        ("for i in x:\n    pass", "incomplete"),
        ("for i in x:\n    pass\n", "complete"),
        ("x = (1,", "incomplete"),
        ("x = )", "invalid"),
    ],
)
def test_local_is_complete(code, verdict):
    assert local_is_complete(code) == verdict


@pytest.mark.parametrize(
    ("line", "indent"),
    [("def f():", "    "), ("    x = 1", "    "), ("        return x", "    "), ("x = 1", "")],
)
def test_local_indent(line, indent):
    assert local_indent(line) == indent


def test_help_query_and_name_at_cursor():
    assert help_query("len?") == ("len", 0)
    assert help_query("os.path.join??") == ("os.path.join", 1)
    assert help_query("?sorted") == ("sorted", 0)
    assert help_query("x = 1") is None
    assert name_at("print(os.path.jo", 16) == "os.path.jo"
    assert name_at("len(x)", 1) == "len"


def test_python_highlights_use_byte_offsets():
    text = 'def f():\n    return "é" + 1\n'
    highlights = python_highlights(text)
    line = text.split("\n")[1].encode()
    found = {line[a:b].decode(): name for a, b, name in highlights[1]}
    assert found["return"] == "Token.Keyword"
    assert found["1"] == "Token.Literal.Number"
    assert "é" in found


def test_blank_input_is_highlighted_without_building_the_lexer():
    python_lexer.cache_clear()
    assert not python_highlights("")
    assert not python_highlights("  \n\t")
    assert python_lexer.cache_info().currsize == 0  # start-up shows an empty editor
    assert python_highlights("x = 1")
    assert python_lexer.cache_info().currsize == 1


# -- rendering ----------------------------------------------------------------------------
def test_bundles_render_by_preference():
    assert type(render_bundle({"text/markdown": "# T", "text/plain": "T"})).__name__ == "Markdown"
    assert '"a"' in plain_of(render_bundle({"application/json": {"a": 1}}))
    image = plain_of(render_bundle({"image/png": "aGVsbG8=", "text/plain": "<Figure>"}))
    assert image.startswith("[image/png, 5 B]") and "<Figure>" in image
    html = {"text/html": "<b>x</b> &amp; <i>y</i>", "text/plain": "P"}
    assert plain_of(render_bundle(html)) == "x & y"
    assert raw_plain(html).plain == "P" and raw_plain({"text/plain": "P"}) is None
    assert plain_of(render_bundle({"text/plain": "\x1b[32mok\x1b[0m"})) == "ok"
    assert plain_of(render_bundle({RECOVERY_MIME: {}})) == ""


def test_traceback_rendering():
    text = render_traceback({"ename": "E", "evalue": "v", "traceback": ["\x1b[31mline\x1b[0m", "E: v"]})
    assert text.plain == "line\nE: v"
    assert render_traceback({"ename": "KernelDied", "evalue": "SIGSEGV"}).plain == "KernelDied: SIGSEGV"


def test_recovery_report_description_tolerates_shapes():
    title, lines = describe_report(
        {
            "cause": "os._exit(3)",
            "cell": {"execution_count": 7, "username": "carol", "code": "import os\nos._exit(3)"},
            "restored": [{"name": "a"}, "b"],
            "lost": [{"name": "g", "reason": "generator"}],
            "seconds": 1.5,
        }
    )
    assert title == "Kernel crashed: os._exit(3)"
    assert lines[0] == "in In [7] run by carol: import os"
    assert "restored 2 names in 1.50s: a, b" in lines
    assert "lost 1: g (generator)" in lines
    title, lines = describe_report({})
    assert title == "Kernel crashed: unknown cause" and lines == ["restored 0 names"]


def test_recovery_report_in_the_kernels_own_shape():
    title, lines = describe_report(
        {
            "cause": "segmentation fault (SIGSEGV)",
            "code": "import ctypes\nctypes.string_at(0)",
            "username": "alice",
            "restored_from": "snapshot",
            "snapshot_after_cell": 4,
            "restored": ["x", "f"],
            "lost": {"y": "assigned by the crashing cell"},
            "notes": ["threads do not survive fork"],
            "seconds": 0.25,
        }
    )
    assert title == "Kernel crashed: segmentation fault (SIGSEGV)"
    assert lines == [
        "in a cell run by alice: import ctypes",
        "restored 2 names from a snapshot (state after In [4]) in 0.25s: x, f",
        "lost 1: y (assigned by the crashing cell)",
        "note: threads do not survive fork",
    ]
    _, lines = describe_report({"cause": "c", "restored_from": "fresh", "seconds": 1})
    assert lines == ["no snapshot or checkpoint could serve: the kernel restarted empty in 1.00s"]


def test_status_formatting():
    assert format_bytes(512) == "512 B"
    assert format_bytes(50 * 1024 * 1024) == "50.0 MB"
    assert format_uptime(59) == "59s" and format_uptime(3 * 3600 + 120) == "3h02m"


# -- config, themes, CLI ------------------------------------------------------------------
def test_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        'display_name = "dana"\ntheme = "light"\nscrollback_lines = 5\n'
        'share_drafts = "yes"\nmystery = 1\n'
    )
    config = load_config(path)
    assert config.display_name == "dana" and config.theme == "light"
    assert config.scrollback_lines == MIN_SCROLLBACK
    assert config.share_drafts is True
    assert len(config.warnings) == 3
    assert load_config(tmp_path / "missing.toml").warnings == []
    (tmp_path / "bad.toml").write_text("display_name = ")
    assert load_config(tmp_path / "bad.toml").warnings
    assert parse_config({"scrollback_lines": True}).warnings
    assert parse_config({"cull_idle_after": 600}).cull_idle_after == 600
    negative = parse_config({"cull_idle_after": -5})
    assert negative.cull_idle_after == 0 and negative.warnings  # never culled, and said so


def test_a_kernel_ipytui_starts_gets_the_configured_cull_time(monkeypatch, tmp_path):
    from ipytui.app import launch

    argvs = []
    monkeypatch.setattr(launch, "_spawn", lambda argv, path: argvs.append(argv))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    launch.spawn_kernel(cull_after=90)
    assert argvs[0][-2:] == ["--cull-idle-after", "90"]


def test_theme_names():
    names = {theme.name for theme in THEMES}
    assert {"ipytui-dark", "ipytui-light", "ipytui-high-contrast"} == names
    assert resolve_theme_name("high-contrast") == "ipytui-high-contrast"
    assert resolve_theme_name(None) == "ipytui-dark"
    assert resolve_theme_name("nord") == "nord"


def test_cli_arguments():
    parser = build_parser()
    assert parser.parse_args([]).existing is None
    assert parser.parse_args(["--existing"]).existing == ""
    args = parser.parse_args(["--existing", "kernel-1.json", "--theme", "light", "--shutdown-on-exit"])
    assert (args.existing, args.theme, args.shutdown_on_exit) == ("kernel-1.json", "light", True)
    assert "ipytui --existing /k.json" in goodbye(None, "/k.json")
    assert goodbye(SimpleNamespace(kernel_shut_down=True), "/k.json") == "ipytui: kernel shut down."


def test_theme_from_config_and_flag():
    from ipytui.app.app import IpytuiApp
    from ipytui.app.config import Config
    from ipytui.kernel.protocol.connection import new_connection_info

    info = new_connection_info()
    assert IpytuiApp(info, config=Config(theme="light")).theme == "ipytui-light"
    app = IpytuiApp(info, config=Config(theme="light"), theme="high-contrast")
    assert app.theme == "ipytui-high-contrast"
    app = IpytuiApp(info, config=Config(theme="no-such-theme"))
    assert app.theme == "ipytui-dark"
    assert any("no-such-theme" in w for w in app.config.warnings)


def test_a_new_kernel_boots_while_the_ui_is_imported(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path) -> None:
    from ipytui.app import cli, launch
    from ipytui.app.app import ExitInfo

    steps: list[str] = []

    class Launch:
        def wait(self):
            steps.append("wait for the kernel")
            return tmp_path / "k.json"

    class App:
        return_code = 0

        def __init__(self, connection, **kwargs) -> None:
            steps.append("app")

        def run(self) -> ExitInfo:
            return ExitInfo(None, True)

    def spawn_kernel(cull_after=None):
        steps.append("spawn")
        return Launch()

    def load_ui():
        steps.append("import the UI")
        return App

    monkeypatch.setattr(launch, "spawn_kernel", spawn_kernel)
    monkeypatch.setattr(cli, "load_ui", load_ui)
    assert cli.run_ui(cli.parse_args([])) == 0
    assert steps == ["spawn", "import the UI", "wait for the kernel", "app"]


def test_the_ui_imports_without_pygments_lexers() -> None:
    """Highlighting machinery (pygments' lexers, importlib.metadata) waits for its
    first use: an empty editor and an empty output stream do not need it."""
    import subprocess
    import sys

    code = ("import sys, ipytui.app.app; "
            "print(sorted(m for m in sys.modules if m.startswith(('pygments.lex', 'textual.highlight'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shared_event_texts_name_who_and_what_came_back():
    from ipytui.kernel.protocol.events import client_name, event_text, plural

    by = {"username": "bob", "session": "s"}
    assert event_text({"event": "restart", "by": by}) == (
        "Kernel restarted by bob: an empty namespace for every client.")
    assert event_text({"event": "restore", "by": by, "method": "snapshot", "after_cell": 4}) == (
        "Kernel restored by bob: back at the state after In [4] from a snapshot.")
    assert event_text({"event": "restore", "by": {"username": "username"}, "method": "checkpoint"}) == (
        "Kernel restored by a Jupyter client: back at the state of the last checkpoint.")
    assert event_text({"event": "interrupt", "by": {"username": ""}}) == "Interrupt sent by a Jupyter client."
    assert event_text({"event": "recovered", "by": None, "method": "checkpoint", "names": ["x"]}) == (
        "Kernel recovered from the state of the last checkpoint: 1 name restored.")
    assert event_text({"event": "crash", "by": None, "report": {"cause": "SIGKILL"}}) == (
        "Kernel crashed (SIGKILL) while no cell ran.")
    assert event_text({"event": "undo", "by": by, "method": "snapshot", "after_cell": 2,
                       "undone": [3, 5]}) == (
        "Undo by bob: back at the state after In [2] from a snapshot; In [3], In [5] undone.")
    assert event_text({"event": "undo", "by": by, "method": "fresh", "after_cell": 2}) == (
        "Undo by bob failed: the restore point died; the kernel starts empty.")
    assert event_text({"event": "undo", "by": by, "method": "newest", "after_cell": 4,
                       "why": "stuck", "undone": [5]}) == (
        "Undo by bob failed (stuck): back at the state after In [4]; In [5] lost.")
    assert client_name(None) == client_name("  ") == "a Jupyter client"
    assert client_name(" carol ") == "carol"
    assert (plural(0, "name"), plural(1, "name"), plural(2, "cell")) == ("0 names", "1 name", "2 cells")


def test_status_shows_the_crash_signal_and_the_banner_counts_right():
    from ipytui.widgets.kernel_status import short_cause

    assert short_cause("segmentation fault (SIGSEGV)") == "SIGSEGV"
    assert short_cause("killed by SIGKILL (out of memory?)") == "SIGKILL"
    assert short_cause("the worker exited with code 3") == "the worker exited with …"
    assert short_cause("exited with code 3") == "exited with code 3"
    _, lines = describe_report({"cause": "x", "restored": ["a"], "execution_count": 5,
                                "username": "dan", "code": "boom()"})
    assert lines[0] == "in In [5] run by dan: boom()"
    assert "restored 1 name: a" in lines


async def test_replay_shows_cells_and_events_in_order_and_crashed_cells_as_died():
    """A late joiner's replay (journal cells and shared events) in the order they happened."""
    from ipytui.app.output_router import OutputRouter
    from ipytui.widgets.output_stream import OutputStream
    from textual.app import App

    class StreamApp(App):
        def compose(self):
            yield OutputStream(id="output", show_times=False)

    error = {"ename": "KernelDied", "evalue": "segfault", "traceback": ["KernelDied: boom, in a cell"]}
    cells = [
        {"id": 1, "msg_id": "m1", "code": "x = 1", "status": "ok", "execution_count": 1,
         "username": "alice", "client_session": "sa", "started": 10.0, "outputs": []},
        {"id": 2, "msg_id": "m2", "code": "crash()", "status": "crashed", "execution_count": 2,
         "username": "username", "client_session": "sb", "started": 20.0,
         "outputs": [{"msg_type": "error", "content": error}]},
    ]
    events = [
        {"event": "restore", "time": 30.0, "by": {"username": "bob"}, "method": "snapshot", "after_cell": 1},
        {"event": "crash", "time": 21.0, "by": {"username": "username"}, "cell_msg_id": "m2",
         "report": {"cause": "boom"}},
        {"event": "crash", "time": 15.0, "by": None, "report": {
            "cause": "SIGKILL", "restored_from": "fresh", "restored": [], "lost": {}, "notes": []}},
        {"event": "restart", "time": "not a time", "by": "not a dict"},
        {"event": "undo", "time": 40.0, "by": {"username": "bob"}, "method": "snapshot",
         "after_cell": 1, "undone": [2], "cell_msg_id": "m3"},
    ]
    app = StreamApp()
    async with app.run_test():
        stream = app.query_one(OutputStream)
        router = OutputRouter(stream, own_session="me", display_name="me")
        router.replay(cells, events)
        shown = [(c.cell_id, c.status) for c in stream.cells.values()]
        assert [s for _, s in shown] == ["event", "ok", "event", "died", "event", "event"], shown
        assert shown[1][0] == "m1" and shown[3][0] == "m2"
        crashed = stream.cell("m2")
        assert crashed.who == "a Jupyter client" and "KernelDied: boom" in crashed.plain
        notes = [c.plain for c in stream.cells.values() if c.status == "event"]
        assert "Kernel restarted by the kernel: an empty namespace" in notes[0]
        assert "KernelDied: SIGKILL, while no cell ran." in notes[1]
        assert "Kernel restored by bob: back at the state after In [1]" in notes[2]
        assert "Undo by bob: back at the state after In [1]" in notes[3]
        # Live, the %undo cell's own output tells it: no second note in the stream.
        live = SimpleNamespace(content={**events[-1], "time": 50.0})
        router._event(live)
        assert len(stream.cells) == len(shown)


def test_a_kernel_that_stopped_restarting_says_what_to_do():
    _, lines = describe_report({"cause": "code 3", "restored_from": "stopped", "restored": []})
    assert any("F8 restarts it" in line for line in lines) and not any("restored" in text for text in lines)
