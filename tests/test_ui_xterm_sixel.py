"""End to end in pixels: the installed ``ipytui`` in ``xterm -ti vt340`` (under Xvfb) draws
a matplotlib plot from ipykernel as sixels, with ``images = "auto"``.

The plot is striped: 8-pixel columns of pure red and pure blue. Sixels
show the stripes as they are; half blocks (one colour pair per character
cell) could not, so finding them on the screenshot proves the protocol
was detected and used. The cell runs from a second client (jupyter_client):
its output reaches every UI attached to the kernel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_ui_support import IPYKERNEL_ARGV, KernelProcess
from test_ui_tmux import terminal_env as _env
from test_ui_tmux_images import installed_ipytui

NEEDED = ("Xvfb", "xterm", "import")
missing = [tool for tool in NEEDED if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"needs {', '.join(missing)} (apt: xvfb xterm imagemagick)"
)
pytest.importorskip("matplotlib", reason="matplotlib draws the plot")
pytest.importorskip("PIL", reason="Pillow reads the screenshot")

TIMEOUT = 60.0
STRIPE = 8
PLOT = """\
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
stripes = np.zeros((1, 40, 3))
stripes[0, 0::2] = (1, 0, 0)
stripes[0, 1::2] = (0, 0, 1)
fig = plt.figure(figsize=(3.2, 1.6), dpi=100)
ax = fig.add_axes([0, 0, 1, 1])
ax.axis('off')
ax.imshow(stripes, interpolation='nearest', aspect='auto')
plt.show()
"""
RED = (255, 0, 0)
BLUE = (0, 0, 255)


class Display:
    """A private Xvfb server; the display number is the one it picked itself."""

    def __init__(self, tmp_path: Path) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
             "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            self.name = ":" + pipe.readline().strip()

    def screenshot(self, path: Path):
        from PIL import Image

        subprocess.run(["import", "-display", self.name, "-window", "root", str(path)],
                       check=True, timeout=30, capture_output=True)
        with Image.open(path) as image:
            return image.convert("RGB")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def stripe_changes(image) -> int:
    """The most red/blue alternations found along one row of the screenshot."""
    best = 0
    pixels = image.load()
    for y in range(0, image.height, 2):
        last, changes = None, 0
        for x in range(image.width):
            colour = pixels[x, y]
            if colour in (RED, BLUE):
                if last is not None and colour != last:
                    changes += 1
                last = colour
        best = max(best, changes)
    return best


def wait_for_log(log: Path, text: str, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)  # polling a file another process writes: no event to await
    raise AssertionError(f"no {what!r} from xterm after {TIMEOUT}s")


def test_a_plot_from_ipykernel_is_drawn_as_sixels_in_xterm(tmp_path):
    from jupyter_client import BlockingKernelClient

    kernel = KernelProcess(tmp_path, argv=IPYKERNEL_ARGV).start()
    display = Display(tmp_path)
    log = tmp_path / "xterm.log"
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text('images = "auto"\n')
    env = {**os.environ, **_env(tmp_path), "DISPLAY": display.name}
    env.pop("TERM")
    env.pop("COLORTERM")
    xterm = subprocess.Popen(
        ["xterm", "-ti", "vt340", "-geometry", "120x40", "-l", "-lf", str(log),
         "-e", *installed_ipytui(), "--existing", str(kernel.path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = BlockingKernelClient(connection_file=str(kernel.path))
    try:
        wait_for_log(log, "idle", "the UI attached and idle")
        client.load_connection_file()
        client.start_channels()
        reply = client.execute_interactive(PLOT, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        deadline = time.monotonic() + TIMEOUT
        changes = 0
        while time.monotonic() < deadline and changes < 20:
            changes = stripe_changes(display.screenshot(tmp_path / "screen.png"))
            time.sleep(0.2)  # a screenshot is a poll too
        # 40 stripes of 8 px: sixels show (nearly) every edge; half blocks none at all.
        assert changes >= 20, f"only {changes} red/blue stripe edges on the screenshot"
        assert "\x1bP" in log.read_text(errors="replace")  # a DCS: the sixel data itself
    finally:
        client.stop_channels()
        xterm.kill()
        xterm.wait(timeout=10)
        display.close()
        kernel.stop()
