"""Rich output in the TUI under the Pilot, against a real kernel: images, HTML, LaTeX.

Pictures are made in the kernel (Pillow, matplotlib, an SVG) and checked
by their pixels once decoded and by the colours of the half blocks drawn;
tables come from a real pandas DataFrame.
"""

from __future__ import annotations

import gc
import weakref

import pytest
from ipytui.app.config import Config
from ipytui.widgets.image_output import ImageOutput
from ipytui.widgets.rich_output import RichOutput
from test_ui_support import (
    IPYKERNEL_ARGV,
    SIZE,
    KernelProcess,
    make_app,
    run_cell,
    wait_for,
    wait_ready,
)

PIL = pytest.importorskip("PIL", reason="Pillow makes the test pictures")

# A picture with two known halves: red above, blue below, 200x100 pixels.
TWO_HALVES = """\
import io
from PIL import Image as _I
class Pic:
    def __init__(self, w=200, h=100):
        self.im = _I.new('RGB', (w, h), (255, 0, 0))
        self.im.paste((0, 0, 255), (0, h // 2, w, h))
    def _repr_png_(self):
        buf = io.BytesIO()
        self.im.save(buf, 'PNG')
        return buf.getvalue()
"""


def halfblock_config(**kwargs) -> Config:
    return Config(display_name="alice", scrollback_lines=5000, images="halfblock", **kwargs)


def images_of(cell) -> list[ImageOutput]:
    return [o for o in cell.outputs() if isinstance(o, ImageOutput)]


def drawn_colours(output: ImageOutput) -> set[tuple[int, int, int]]:
    """Foreground and background colours of the half blocks the picture widget drew."""
    colours = set()
    picture = output.query_one(".image-output--picture")
    for y in range(picture.size.height):
        for segment in picture.render_line(y):
            if segment.text and set(segment.text) == {"▀"} and segment.style is not None:
                for colour in (segment.style.color, segment.style.bgcolor):
                    if colour is not None and colour.triplet is not None:
                        colours.add(tuple(colour.triplet))
    return colours


@pytest.fixture
def kernel(tmp_path):
    proc = KernelProcess(tmp_path).start()
    yield proc
    proc.stop()


async def test_png_is_drawn_in_half_blocks_at_its_natural_size(kernel):
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "Pic()")
        [output] = images_of(cell)
        assert output.prompt.startswith("Out[") and output.image.mime == "image/png"
        assert output.image.pixels.getpixel((5, 5))[:3] == (255, 0, 0)
        assert output.image.pixels.getpixel((5, 95))[:3] == (0, 0, 255)
        picture = output.query_one(".image-output--picture")
        # 200x100 px at textual-image's default 10x20 px cells: 20 columns, 5 rows.
        await wait_for(pilot, lambda: picture.size.width == 20, "the picture laid out")
        assert picture.size.height == 5
        await wait_for(pilot, lambda: drawn_colours(output), "half blocks drawn")
        assert {(255, 0, 0), (0, 0, 255)} <= drawn_colours(output)


async def test_a_wide_image_shrinks_to_the_pane_and_follows_resizes(kernel):
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "Pic(4000, 400)")  # 400 columns wide at its natural size
        [output] = images_of(cell)
        picture = output.query_one(".image-output--picture")

        def fits() -> bool:
            laid_out = tuple(picture.size) == output.cells
            return laid_out and 0 < picture.size.width <= output.size.width

        await wait_for(pilot, fits, "the picture shrunk to the pane")
        wide = picture.size
        # Aspect kept: 10:1 in pixels is 20:1 in 10x20 px cells.
        assert abs(wide.width / wide.height - 20) <= 20 * 0.25
        await pilot.resize_terminal(60, SIZE[1])
        await wait_for(pilot, lambda: fits() and picture.size.width < wide.width, "a re-layout")
        narrow = picture.size
        assert abs(narrow.width / narrow.height - 20) <= 20 * 0.35


async def test_svg_is_rendered_to_pixels(kernel):
    pytest.importorskip("cairosvg", reason="cairosvg draws SVG")
    code = (
        "class Svg:\n"
        "    def _repr_svg_(self):\n"
        "        return ('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"60\">'\n"
        "                '<rect width=\"120\" height=\"60\" fill=\"#00ff00\"/></svg>')\n"
        "Svg()"
    )
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        cell = await run_cell(pilot, code)
        [output] = images_of(cell)
        assert output.image.mime == "image/svg+xml" and output.image.raw.startswith(b"<svg")
        assert (output.image.width, output.image.height) == (120, 60)
        assert output.image.pixels.getpixel((60, 30))[:3] == (0, 255, 0)
        await wait_for(pilot, lambda: (0, 255, 0) in drawn_colours(output), "green half blocks")


async def test_a_broken_image_says_why_and_the_ui_goes_on(kernel):
    code = "class Bad:\n    def _repr_png_(self):\n        return b'not a png'\nBad()"
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        cell = await run_cell(pilot, code)
        assert not images_of(cell)
        assert "cannot be drawn: not a readable image" in cell.plain
        assert "<__main__.Bad object" in cell.plain  # the text/plain form still shows
        after = await run_cell(pilot, "1 + 1")
        assert "Out[" in after.plain and "2" in after.plain


async def test_images_off_keeps_placeholders(kernel):
    config = Config(display_name="alice", scrollback_lines=5000, images="off")
    app = make_app(kernel, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "Pic()")
        assert not images_of(cell)
        assert "[image/png" in cell.plain


async def test_full_screen_and_save_of_the_selected_image(kernel, tmp_path, monkeypatch):
    from ipytui.app.image_screen import ImageScreen

    monkeypatch.chdir(tmp_path)
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "Pic()")
        [output] = images_of(cell)
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.focused is output, "the image selected")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ImageScreen), "the full screen view")
        full = app.screen.picture
        await wait_for(pilot, lambda: full.size.width > 20, "the picture enlarged")
        assert full.size.width <= SIZE[0] and full.size.height < SIZE[1]
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ImageScreen), "back")
        await pilot.press("s")
        saved = tmp_path / "ipytui-image-1.png"
        await wait_for(pilot, saved.exists, "the saved file")
        assert saved.read_bytes() == output.image.raw
        assert not list(tmp_path.glob("*.part"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.focused is app.main_screen.editor, "the editor again")


async def test_scrollback_drops_old_images_and_frees_them(kernel):
    config = halfblock_config()
    config.scrollback_lines = 100
    app = make_app(kernel, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        first = await run_cell(pilot, "Pic(400, 400)")  # 40 columns x 20 rows
        first_id = first.cell_id
        pixels = weakref.ref(images_of(first)[0].image.pixels)
        del first  # the test must not be what keeps the picture alive
        for _ in range(6):
            await run_cell(pilot, "Pic(400, 400)")
        stream = app.main_screen.stream
        await wait_for(pilot, lambda: first_id not in stream.cells, "the first cell dropped")
        assert stream.dropped_lines > 0

        def freed() -> bool:
            gc.collect()
            return pixels() is None

        await wait_for(pilot, freed, "the dropped picture's memory freed")
        assert sum(c.line_count for c in stream.cells.values()) <= 100 + 25


async def test_dataframe_html_is_a_table_and_t_toggles_to_plain(kernel):
    pytest.importorskip("pandas", reason="pandas makes the DataFrame")
    code = (
        "import pandas as pd\n"
        "pd.set_option('display.max_rows', 6)\n"
        "pd.DataFrame({'n': range(100), 'name': ['x'] * 100, 'f': [1.5] * 100})"
    )
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        cell = await run_cell(pilot, code)
        [output] = [o for o in cell.outputs() if isinstance(o, RichOutput)]
        rendered = output.plain
        assert "<table" not in rendered and "<td>" not in rendered
        assert "100 rows × 3 columns" in rendered
        rows = rendered.splitlines()
        header = next(r for r in rows if "name" in r)
        assert header.split() == ["Out[1]:", "n", "name", "f"] or header.split() == ["n", "name", "f"]
        assert any(r.split() == ["…", "…", "…", "…"] for r in rows)  # the truncation mark
        assert any(r.split() == ["99", "99", "x", "1.5"] for r in rows)
        # Numbers right-aligned: "99" ends where "1" ends in the n column.
        assert any(r.rstrip().endswith("1.5") for r in rows)
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.focused is output, "the table selected")
        await pilot.press("t")
        await wait_for(pilot, lambda: output.showing_raw, "the plain form")
        assert "[100 rows x 3 columns]" in output.plain
        await pilot.press("t")
        await wait_for(pilot, lambda: not output.showing_raw, "the table again")
        await pilot.press("x")  # a key the output has no use for goes to the editor
        await wait_for(pilot, lambda: app.main_screen.editor.text == "x", "typing in the editor")
        assert app.focused is app.main_screen.editor


async def test_generic_html_reads_as_text(kernel):
    html = (
        "<h2>Report</h2><p>See <a href='https://example.org/doc'>the docs</a> and "
        "<code>f(x)</code>.</p><ul><li>first<li>second</ul><script>alert(1)</script>"
    )
    code = f"class H:\n    def _repr_html_(self):\n        return {html!r}\nH()"
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        cell = await run_cell(pilot, code)
        [output] = [o for o in cell.outputs() if isinstance(o, RichOutput)]
        text = output.plain
        assert "<" not in text.replace("<__main__", "") and "alert" not in text
        assert "Report" in text and "the docs (https://example.org/doc)" in text
        assert "• first" in text and "• second" in text and "f(x)" in text


async def test_latex_becomes_unicode(kernel):
    pytest.importorskip("pylatexenc", reason="pylatexenc turns LaTeX into unicode")
    code = (
        "class L:\n"
        "    def _repr_latex_(self):\n"
        "        return r'$\\alpha + \\beta \\leq \\infty$'\n"
        "class M:\n"
        "    def _repr_markdown_(self):\n"
        "        return 'Euler: $e^{i\\pi} = -1$'\n"
        "display(L())\n"
        "display(M())"
    )
    app = make_app(kernel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        from test_ui_support import DISPLAY_PRELUDE

        await run_cell(pilot, DISPLAY_PRELUDE)
        cell = await run_cell(pilot, code)
        text = "\n".join(o.plain for o in cell.outputs())
        assert "α+β≤∞" in text.replace(" ", "")  # LaTeX eats the space after a macro
        assert "π" in text and "\\pi" not in text


async def test_a_matplotlib_figure_from_ipykernel_draws_inline(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib makes the figure")
    kernel = KernelProcess(tmp_path, argv=IPYKERNEL_ARGV).start()
    try:
        app = make_app(kernel, config=halfblock_config())
        async with app.run_test(size=SIZE) as pilot:
            await wait_ready(pilot)
            code = (
                "%matplotlib inline\n"
                "import matplotlib.pyplot as plt\n"
                "fig, ax = plt.subplots(figsize=(4, 2), dpi=50)\n"
                "fig.patch.set_facecolor('#ff0000')\n"
                "ax.plot([0, 1], [0, 1])\n"
                "plt.show()"
            )
            cell = await run_cell(pilot, code)
            await wait_for(pilot, lambda: images_of(cell), "the figure")
            [output] = images_of(cell)
            assert output.image.mime == "image/png"
            assert output.image.pixels.getpixel((2, 2))[:3] == (255, 0, 0)
            await wait_for(pilot, lambda: (255, 0, 0) in drawn_colours(output), "red half blocks")
    finally:
        kernel.stop()


WIDGET_VIEWS = {
    # a widget shows its type and live value
    "slider": (
        "import ipywidgets as w\n"
        "s = w.IntSlider(value=3, min=0, max=10, description='n')\n"
        "display(s)",
        "IntSlider 'n' = 3 (min 0, max 10",
        "s.value = 7",
        "'n' = 7",
    ),
    # an HBox of a label and a progress bar (what tqdm and ipyparallel show) reads as
    # its children's text, and a child's update redraws the box's line
    "progress in a box": (
        "import ipywidgets as w\n"
        "bar = w.IntProgress(value=1, min=0, max=4)\n"
        "display(w.HBox([w.Label('engines'), bar]))",
        "HBox: engines | IntProgress 25% = 1",
        "bar.value = 3",
        "IntProgress 75% = 3",
    ),
}


@pytest.mark.parametrize("case", WIDGET_VIEWS)
async def test_a_widget_reads_as_text_and_follows_its_updates(tmp_path, case):
    code, shown, update, updated = WIDGET_VIEWS[case]
    pytest.importorskip("ipywidgets", reason="ipywidgets makes the widget")
    kernel = KernelProcess(tmp_path, argv=IPYKERNEL_ARGV).start()
    try:
        app = make_app(kernel)
        async with app.run_test(size=SIZE) as pilot:
            await wait_ready(pilot)
            cell = await run_cell(pilot, code)
            text = await wait_for(pilot, lambda: shown in cell.plain and cell.plain, "view")
            assert shown in text
            await run_cell(pilot, update)
            await wait_for(pilot, lambda: updated in cell.plain, "the live update")
            assert shown not in cell.plain  # replaced, not appended
    finally:
        kernel.stop()


async def test_a_display_update_swaps_pictures_and_kinds_in_place(kernel):
    from test_ui_support import DISPLAY_PRELUDE

    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, DISPLAY_PRELUDE)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "display(Pic(), display_id='p')")
        [first] = images_of(cell)
        await run_cell(pilot, "update_display(Pic(60, 30), display_id='p')")
        await wait_for(pilot, lambda: first.image.width == 60, "the new picture")
        assert images_of(cell) == [first]  # the same widget, redrawn
        await run_cell(pilot, "update_display('now text', display_id='p')")
        await wait_for(pilot, lambda: "now text" in cell.plain, "text in the picture's place")
        assert not images_of(cell) and not first.is_attached
        await run_cell(pilot, "update_display(Pic(), display_id='p')")
        await wait_for(pilot, lambda: images_of(cell), "a picture again")
        assert "now text" not in cell.plain


async def test_pictures_past_the_memory_budget_become_labels(kernel):
    app = make_app(kernel, config=halfblock_config())
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        stream = app.main_screen.stream
        await run_cell(pilot, TWO_HALVES)
        first = await run_cell(pilot, "Pic(300, 300)")
        [picture] = images_of(first)
        stream.image_budget = picture.image.memory * 2  # room for two pictures
        pixels = weakref.ref(picture.image.pixels)
        del picture
        cells = [first] + [await run_cell(pilot, "Pic(300, 300)") for _ in range(2)]
        await wait_for(pilot, lambda: not images_of(first), "the oldest picture dropped")
        assert "[image/png 300x300] dropped from memory" in first.plain
        assert all(images_of(cell) for cell in cells[1:])  # the newer two stay
        assert first.cell_id in stream.cells  # the cell itself is still in the scrollback
        del cells

        def freed() -> bool:
            gc.collect()
            return pixels() is None

        await wait_for(pilot, freed, "the dropped picture's memory freed")


@pytest.mark.parametrize(("mode", "widget"), [("sixel", "SixelImage"), ("kitty", "TGPImage")])
async def test_the_images_setting_picks_the_protocol(kernel, mode, widget):
    config = Config(display_name="alice", scrollback_lines=5000, images=mode)
    app = make_app(kernel, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await run_cell(pilot, TWO_HALVES)
        cell = await run_cell(pilot, "Pic()")
        [output] = images_of(cell)
        picture = output.query_one(".image-output--picture")
        from textual_image import widget as timg

        assert isinstance(picture, getattr(timg, widget))
        await wait_for(pilot, lambda: picture.size.width > 0, "the picture laid out")
        after = await run_cell(pilot, "2 + 2")  # drawing it did not stop the UI
        assert "4" in after.plain
