"""What drawing rich output costs the UI, next to what ipykernel spends making it.

    python benchmarks/rich_output_bench.py [--reps 7]

In one run, ipykernel (``%matplotlib inline``) makes a 640x480 figure and
a 1000-row DataFrame; the time from execute request to the display/result
message is the kernel's cost. The UI's cost for the same bundles is then
measured on them: PNG decode, the half-block rendering at 100 columns and
the sixel encoding of the picture; HTML to a Rich table and that table's
layout. Ratios are UI/kernel medians. Each row says whether the output was
right: the picture's drawn colours are the figure's, the table has the
DataFrame's visible rows and its shape line.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

FIGURE = """\
%matplotlib inline
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
fig.patch.set_facecolor('#ff0000')
ax.plot(range(100), [i * i for i in range(100)])
plt.show()
"""
FRAME_SETUP = "import pandas as pd\ndf = pd.DataFrame({'a': range(1000), 'b': ['x'] * 1000})"
COLUMNS = 100


def kernel_bundles(reps: int) -> tuple[list[float], list[float], dict, dict]:
    """ipykernel's times for the figure and the DataFrame, and one bundle of each."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive("import matplotlib.pyplot\n" + FRAME_SETUP, timeout=60)
        figure_times, frame_times, bundles = [], [], {}
        for _ in range(reps):
            for code, key, times in ((FIGURE, "figure", figure_times), ("df", "frame", frame_times)):
                start = time.perf_counter()
                found: list[float] = []

                def hook(msg: dict[str, Any], key=key, start=start, found=found) -> None:
                    if msg["msg_type"] in ("display_data", "execute_result") and not found:
                        found.append(time.perf_counter() - start)
                        bundles[key] = msg["content"]["data"]

                kc.execute_interactive(code, output_hook=hook, timeout=60)
                times.append(found[0])
        return figure_times, frame_times, bundles["figure"], bundles["frame"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def timed(func: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return times, result


def draw_halfblock(bundle: dict, ours: bool = True) -> set[tuple[int, int, int]]:
    """Decode and draw in half blocks: ipytui's renderable, or textual-image's own."""
    from ipytui.widgets.halfblock import HalfblockPicture
    from ipytui.widgets.image_data import image_from_bundle
    from rich.console import Console
    from textual_image.renderable.halfcell import Image as Halfcell

    image = image_from_bundle(bundle)
    console = Console(width=COLUMNS, file=io.StringIO(), color_system="truecolor")
    rows = round(COLUMNS * image.height / image.width / 2)
    picture = (HalfblockPicture(image.pixels, COLUMNS, rows) if ours
               else Halfcell(image.pixels, width=COLUMNS, height=rows))
    colours = set()
    for segment in console.render(picture):
        if segment.style and segment.style.color and segment.style.color.triplet:
            colours.add(tuple(segment.style.color.triplet))
    return colours


def encode_sixel(bundle: dict) -> int:
    from ipytui.widgets.image_data import image_from_bundle
    from textual_image._sixel import image_to_sixels

    image = image_from_bundle(bundle)
    scaled = image.pixels.convert("RGB").resize((COLUMNS * 10, COLUMNS * 10 * 480 // 640))
    return len(image_to_sixels(scaled))


def table_text(bundle: dict) -> str:
    from ipytui.widgets.html_view import html_renderable
    from ipytui.widgets.mimebundle import plain_of

    return plain_of(html_renderable(bundle["text/html"]))


def row(name: str, ui: list[float], kernel: list[float], correct: bool) -> str:
    u, k = statistics.median(ui) * 1000, statistics.median(kernel) * 1000
    return f"| {name} | {u:.1f} | {k:.1f} | {u / k:.2f} | {'yes' if correct else 'NO'} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    fig_k, frame_k, figure, frame = kernel_bundles(args.reps)
    draw_halfblock(figure)  # imports, once, untimed
    half_t, colours = timed(lambda: draw_halfblock(figure), args.reps)
    theirs_t, their_colours = timed(lambda: draw_halfblock(figure, ours=False), args.reps)
    sixel_t, sixel_len = timed(lambda: encode_sixel(figure), args.reps)
    table_t, text = timed(lambda: table_text(frame), args.reps)
    print("| UI step (ipytui) | UI ms | ipykernel ms (makes it) | ratio | right |")
    print("|---|---|---|---|---|")
    print(row("figure 640x480 → half blocks, 100 cols", half_t, fig_k, (255, 0, 0) in colours))
    print(row("  same with textual-image's halfcell renderable", theirs_t, fig_k,
              their_colours == colours))
    print(row("figure 640x480 → sixel, 1000 px wide", sixel_t, fig_k, sixel_len > 1000))
    rows_ok = "1000 rows × 2 columns" in text and " 999 " in text and "<td>" not in text
    print(row("DataFrame 1000x2 HTML → Rich table", table_t, frame_k, rows_ok))
    return 0


if __name__ == "__main__":
    sys.exit(main())
