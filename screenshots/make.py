"""Make the README's screenshots from the real app against the real kernel.

    python screenshots/make.py [--out DIR] [--no-png]

Each picture is the Textual app (``IpytuiApp``) driven by the Pilot at a
fixed terminal size, attached to ``python -m ipytui.kernel -f FILE`` running
in a private data/config/runtime dir; the crash is a real one (the worker
kills itself) and the banner shows the supervisor's real recovery report.
Textual writes SVG; ``rsvg-convert``, cairosvg or ImageMagick's ``convert``
turns it into PNG when installed, otherwise the SVGs stay. Pictures are
drawn in half blocks (``images = "halfblock"``), which an SVG can hold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = (120, 34)
TIMEOUT = 60.0

DEMO_CELLS = [
    "import math\nprint('hello, world')\n[math.sqrt(n) for n in range(4)]",
    "class Md:\n    def _repr_markdown_(self):\n        return '**bold** and *italic*, rendered'\nMd()",
    "import sys\nprint('warnings go to stderr', file=sys.stderr)\n{'name': 'ipytui', 'clients': 1}",
    "def ratio(a, b):\n    return a / b\nratio(1, 0)",
]


class Kernel:
    """``python -m ipytui.kernel -f FILE`` in a throwaway home for its files."""

    def __init__(self, root: Path) -> None:
        from ipytui.kernel.protocol.connection import new_connection_info, write_connection_file

        self.root = root
        self.env = {
            "IPYTUI_DATA_DIR": str(root / "data"),
            "IPYTUI_CONFIG_DIR": str(root / "config"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "PYTHONUNBUFFERED": "1",
        }
        self.info = new_connection_info(kernel_name="ipytui")
        self.path = write_connection_file(self.info, root / "kernel.json")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Kernel:
        with open(self.root / "kernel.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ipytui.kernel", "-f", str(self.path)],
                env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kernel exited; see {self.root / 'kernel.log'}")
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", self.info.shell_port)) == 0:
                    return self
            time.sleep(0.05)
        raise TimeoutError("the kernel did not listen")

    def stop(self) -> None:
        """SIGTERM first: the kernel then stops what it owns (a cluster's processes
        live in sessions of their own, which a SIGKILL of its group would leave)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


async def wait_for(pilot, predicate: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + TIMEOUT
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {what}")
        await pilot.pause(0.05)
    return value


async def ready(pilot) -> None:
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.lifecycle == "ok", "the kernel")


async def settle(pilot) -> None:
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.status.state == "idle", "an idle kernel")
    await pilot.pause(0.3)


async def run_cell(pilot, code: str) -> None:
    screen = pilot.app.main_screen
    before = set(screen.stream.cells)
    screen.editor.set_text(code)
    await pilot.press("f5")

    def finished() -> bool:
        new = [c for cid, c in screen.stream.cells.items() if cid not in before]
        return any(c.own and c.status not in ("queued", "running") for c in new)

    await wait_for(pilot, finished, f"cell {code!r}")


# -- the scenes ------------------------------------------------------------------
async def idle(pilot) -> None:
    await ready(pilot)
    pilot.app.main_screen.editor.set_text("")
    await settle(pilot)


async def with_output(pilot) -> None:
    await ready(pilot)
    for code in DEMO_CELLS:
        await run_cell(pilot, code)
    pilot.app.main_screen.editor.set_text("ratio(3, 4)")
    await settle(pilot)


async def completion(pilot) -> None:
    await ready(pilot)
    await run_cell(pilot, "import collections\nimport json")
    screen = pilot.app.main_screen
    screen.editor.set_text("json.d")
    await pilot.press("tab")
    await wait_for(pilot, lambda: screen.menu.has_class("-open"), "the completion menu")
    await settle(pilot)


async def help_pane(pilot) -> None:
    await ready(pilot)
    screen = pilot.app.main_screen
    screen.editor.set_text("sorted")
    await pilot.press("f1")
    await wait_for(pilot, lambda: screen.help_pane.is_open, "the help pane")
    await settle(pilot)


async def crash(pilot) -> None:
    await ready(pilot)
    await run_cell(pilot, "data = list(range(10))\nmodel = {'weights': [0.1, 0.2]}")
    screen = pilot.app.main_screen
    screen.editor.set_text("import ctypes\nctypes.string_at(0)  # segfault")
    await pilot.press("f5")
    await wait_for(pilot, lambda: screen.banner.is_open and "recovery report" not in screen.banner.plain
                   and screen.lifecycle == "ok",
                   "the recovery report")
    screen.editor.set_text("data[:3]  # the draft survives")
    await settle(pilot)


PLOT_SETUP = """\
import numpy as np
import matplotlib.pyplot as plt  # the kernel's own backend shows figures
plt.style.use('dark_background')"""
PLOT_CELL = """\
x = np.linspace(0, 4 * np.pi, 200)
fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
ax.plot(x, np.sin(x), lw=4, label='sin'); ax.plot(x, np.cos(x), lw=4, label='cos')
ax.legend(); plt.show()"""

TABLE_CELLS = [
    "import pandas as pd\npd.set_option('display.max_rows', 8)",
    "df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'] * 40, 'temp': range(120),\n"
    "                   'rain': [0.5, 12.25, 3.0] * 40})\ndf",
    "class Doc:\n    def _repr_html_(self):\n        return ('<h3>Notes</h3><ul><li>see <a href=\"https://jupyter.org\">"
    "Jupyter</a></li><li><code>df.describe()</code></li></ul>')\n"
    "    def _repr_latex_(self):\n        return r'$\\sum_i x_i \\leq \\pi$'\nDoc()",
]


async def plot(pilot) -> None:
    await ready(pilot)
    await run_cell(pilot, PLOT_SETUP)
    await run_cell(pilot, PLOT_CELL)
    pilot.app.main_screen.editor.set_text("")
    await settle(pilot)


async def tables(pilot) -> None:
    await ready(pilot)
    for code in TABLE_CELLS:
        await run_cell(pilot, code)
    pilot.app.main_screen.editor.set_text("df.describe()")
    await settle(pilot)


TIMELINE_CELLS = [
    "import numpy as np\nprices = np.linspace(10, 20, 5)",
    "prices *= 1.1  # a raise",
    "del prices  # oops",
]


async def timeline(pilot) -> None:
    from ipytui.widgets.timeline_panel import TimelinePanel

    await ready(pilot)
    for code in TIMELINE_CELLS:
        await run_cell(pilot, code)
    await settle(pilot)
    await pilot.press("ctrl+t")

    def rows() -> bool:
        panels = pilot.app.screen.query(TimelinePanel)
        return bool(panels) and len((panels.first().timeline or {}).get("points") or []) >= 2

    await wait_for(pilot, rows, "the timeline with its restore points")
    await pilot.pause(0.3)


async def cluster(pilot) -> None:
    await ready(pilot)
    await run_cell(pilot, "%cluster start 2")
    await run_cell(pilot, "%px import os; print('engine pid', os.getpid())")
    screen = pilot.app.main_screen
    await wait_for(pilot, lambda: screen.cluster is not None and len(screen.cluster.engines) == 2,
                   "two engines in the status bar")
    await pilot.press("f12")
    pane = screen.query_one("#cluster")
    await wait_for(pilot, lambda: pane.is_open, "the cluster pane")
    await run_cell(pilot, "%px print('hello from engine', os.getpid())")
    await wait_for(pilot, lambda: "hello from engine" in pane.plain, "the engine's own stream")
    screen.editor.set_text("%px result = sum(range(10**6))")
    await settle(pilot)


Scene = Callable[[object], Awaitable[None]]
SCENES: list[tuple[str, Scene, str | None]] = [
    ("main-idle", idle, None),
    ("main-output", with_output, None),
    ("completion-menu", completion, None),
    ("help-pane", help_pane, None),
    ("crash-recovered", crash, None),
    ("theme-light", with_output, "light"),
    ("theme-high-contrast", with_output, "high-contrast"),
    ("plot-inline", plot, None),
    ("html-table", tables, None),
    ("timeline", timeline, None),
    ("cluster-pane", cluster, None),
]


async def shoot(name: str, scene: Scene, theme: str | None, out: Path, root: Path) -> Path:
    from ipytui.app.app import IpytuiApp
    from ipytui.app.config import Config

    (root / name).mkdir()
    kernel = Kernel(root / name)
    for key, value in kernel.env.items():  # the app's own journal/config lookups
        os.environ[key] = value
    kernel.start()
    try:
        app = IpytuiApp(kernel.path, config=Config(display_name="alice", scrollback_lines=5000,
                                                    images="halfblock"),
                        theme=theme, deterministic=True, shutdown_on_exit=True)
        async with app.run_test(size=SIZE) as pilot:
            await scene(pilot)
            svg = Path(app.save_screenshot(f"{name}.svg", str(out)))
            await app.quit_session(shutdown=True)
    finally:
        kernel.stop()
    return svg


def svg_to_png_with_cairosvg(svg: Path, png: Path) -> bool:
    """cairosvg (an ipytui dependency) draws Textual's SVG; ImageMagick's own renderer cannot."""
    try:
        import cairosvg
    except (ImportError, OSError):
        return False
    cairosvg.svg2png(url=str(svg), write_to=str(png), scale=1.5)
    return True


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        cmd = ["rsvg-convert", "--zoom", "1.5", "-o", str(png), str(svg)]
    elif svg_to_png_with_cairosvg(svg, png):
        return png
    elif shutil.which("convert"):
        cmd = ["convert", "-density", "144", str(svg), str(png)]
    else:
        return None
    subprocess.run(cmd, check=True)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--no-png", action="store_true", help="keep only the SVGs")
    parser.add_argument("--only", nargs="*", help="scene names to make (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ipytui-shots-") as tmp:
        for name, scene, theme in SCENES:
            if args.only and name not in args.only:
                continue
            svg = asyncio.run(shoot(name, scene, theme, args.out, Path(tmp)))
            png = None if args.no_png else to_png(svg)
            print(png or svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
