"""End to end: the installed ``ipytui`` draws a known picture in half blocks in tmux.

The picture (red above, blue below) is made in the kernel with Pillow; the
screen is read back with ``capture-pane -e`` and checked for the half-block
character in the picture's colours, so what is tested is what a user sees.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ui_support import IPYTUI_KERNEL_ARGV, KernelProcess
from test_ui_tmux import SCREEN_TIMEOUT, Terminal, _kill_kernels_under
from test_ui_tmux import terminal_env as _env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
pytest.importorskip("PIL", reason="Pillow makes the picture")

PICTURE = (
    "from PIL import Image as I; im = I.new('RGB', (200, 100), (255, 0, 0)); "
    "im.paste((0, 0, 255), (0, 50, 200, 100)); im"
)
RED = (255, 0, 0)
BLUE = (0, 0, 255)
_SGR_OR_CHAR = re.compile(r"\x1b\[([0-9;]*)m|(.)")


def installed_ipytui() -> list[str]:
    """The ipytui of the Python running the tests (this checkout), not another on PATH."""
    script = Path(sys.executable).with_name("ipytui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ipytui.app.cli"]


def coloured_screen(term: Terminal) -> str:
    return subprocess.run(
        ["tmux", "-L", term.socket, "capture-pane", "-e", "-p", "-t", "ui"],
        capture_output=True, text=True, timeout=10,
    ).stdout


def _apply_sgr(params: list[str], fg: tuple, bg: tuple) -> tuple[tuple, tuple]:
    i = 0
    while i < len(params):
        p = params[i]
        if p in ("38", "48") and params[i + 1 : i + 2] == ["2"]:
            rgb = tuple(int(v) for v in params[i + 2 : i + 5])
            fg, bg = (rgb, bg) if p == "38" else (fg, rgb)
            i += 5
            continue
        if p in ("0", ""):
            fg, bg = (), ()
        elif p == "39":
            fg = ()
        elif p == "49":
            bg = ()
        i += 1
    return fg, bg


def half_block_rows(screen: str) -> list[list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """For each screen line with half blocks: (foreground, background) of every block.

    The SGR state is followed along the line, since tmux writes a colour only
    where it changes.
    """
    rows = []
    for line in screen.splitlines():
        fg: tuple[int, ...] = ()
        bg: tuple[int, ...] = ()
        cells = []
        for sgr, char in _SGR_OR_CHAR.findall(line):
            if char == "▀":
                cells.append((fg, bg))
            elif not char:
                fg, bg = _apply_sgr(sgr.split(";"), fg, bg)
        if cells:
            rows.append(cells)
    return rows


def reddish(rgb: tuple) -> bool:
    """Red after scaling: resampling mixes in a little of the neighbours."""
    return len(rgb) == 3 and rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60


def wait_for_blocks(term: Terminal, done) -> list:
    deadline = time.monotonic() + SCREEN_TIMEOUT
    rows: list = []
    while time.monotonic() < deadline:
        rows = half_block_rows(coloured_screen(term))
        if done(rows):
            break
        time.sleep(0.1)  # polling a terminal: there is no event to await
    return rows


def test_a_plot_from_ipykernel_started_by_ipytui_draws_inline(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib draws the plot")
    pytest.importorskip("ipykernel", reason="the python3 kernel is ipykernel")
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('images = "auto"\n')
    command = [*installed_ipytui(), "--kernel", "python3", "--shutdown-on-exit"]
    term = Terminal(command, _env(tmp_path))
    try:
        term.wait_for("idle", "ipykernel, idle")
        term.type(
            "import matplotlib.pyplot as plt; "
            "fig = plt.figure(figsize=(3, 1.5), dpi=100, facecolor='#ff0000'); "
            "plt.axes().set_facecolor('#ff0000'); plt.show()"
        )
        term.keys("Enter")
        rows = wait_for_blocks(term, lambda rows: len(rows) >= 3)
        cells = [cell for row in rows for cell in row]
        # A red figure with red axes: red nearly everywhere but for the spines and ticks.
        red = sum(reddish(fg) and reddish(bg) for fg, bg in cells)
        assert len(rows) >= 3 and red > len(cells) / 2, (term.screen(), cells[:40])
        term.keys("C-q")
        term.wait_for_any(("kernel shut down", "Pane is dead"), "the UI's exit")
    finally:
        term.close()
        _kill_kernels_under(tmp_path)


# "auto" must come to half blocks by itself: tmux (3.3, no sixel build) answers no graphics query.
@pytest.mark.parametrize("mode", ["halfblock", "auto"])
def test_a_picture_is_drawn_in_half_blocks_in_tmux(tmp_path, mode):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(f'display_name = "tmuxer"\nimages = "{mode}"\n')
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    term = Terminal([*installed_ipytui(), "--existing", str(kernel.path)], _env(tmp_path))
    try:
        term.wait_for("idle", "the idle kernel")
        term.type(PICTURE)
        term.keys("Enter")
        term.wait_for("Out[1]:", "the result")
        rows = wait_for_blocks(term, lambda rows: rows and rows[-1][0] == (BLUE, BLUE))
        # Red above, blue below: the top row is red on red, the bottom blue on blue.
        assert rows and rows[0][0] == (RED, RED) and rows[-1][0] == (BLUE, BLUE), rows
        width = len(rows[0])
        assert all(len(row) == width for row in rows) and all(len(set(r)) == 1 for r in rows)
        # Aspect kept: a 2:1 picture in cells twice as tall as wide is about 4 columns a row.
        assert 2.5 <= width / len(rows) <= 5.5, (width, len(rows))
    finally:
        term.close()
        kernel.stop()
