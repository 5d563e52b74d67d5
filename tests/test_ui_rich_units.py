"""The pure pieces of rich output: HTML, tables, LaTeX, image decoding, fitting, saving."""

from __future__ import annotations

import base64
import io

import pytest
from ipytui.app.config import parse_config
from ipytui.app.image_save import free_path, write_atomically
from ipytui.app.widget_models import WIDGET_VIEW_MIME, WidgetModels, describe_state
from ipytui.widgets.bundle_view import view_bundle
from ipytui.widgets.html_table import grid_of
from ipytui.widgets.html_tree import parse_html
from ipytui.widgets.html_view import html_renderable
from ipytui.widgets.image_data import ImageData, ImageError, image_from_bundle
from ipytui.widgets.image_output import fit_cells
from ipytui.widgets.latex_text import latex_to_unicode, markdown_math_to_unicode
from ipytui.widgets.mimebundle import plain_of

Image = pytest.importorskip("PIL.Image", reason="Pillow makes the test pictures")


def png(width: int, height: int, colour=(255, 0, 0)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


# -- HTML ---------------------------------------------------------------------------------
def test_sloppy_html_parses_like_a_browser():
    root = parse_html("<ul><li>a<li>b</ul><p>one<p>two</div></span>")
    assert [li.text() for li in root.find_all("li")] == ["a", "b"]
    assert [p.text() for p in root.find_all("p")] == ["one", "two"]


def test_deep_nesting_is_bounded():
    root = parse_html("<div>" * 5000 + "x")
    assert "x" in root.text()


def test_html_text_keeps_structure_and_drops_scripts():
    text = plain_of(html_renderable(
        "<h1>T</h1><p>a <b>b</b><br>c</p><ol><li>x<ul><li>y</ul></ol><hr>"
        "<img alt='cat'><a href='#top'>up</a><style>p{}</style>&lt;tag&gt;"
    ))
    lines = text.splitlines()
    assert lines[:3] == ["T", "a b", "c"]
    assert "1. x" in lines and "  • y" in lines
    assert "[image: cat]" in text and "up" in text and "#top" not in text
    assert "p{}" not in text and "<tag>" in text


def test_table_spans_fill_the_grid():
    table = parse_html(
        "<table><tr><th colspan=2>h</th></tr>"
        "<tr><th rowspan=2>a</th><td>1</td></tr><tr><td>2</td></tr></table>"
    ).find_all("table")[0]
    grid, head_rows = grid_of(table)
    assert head_rows == 1
    assert [[c.text for c in row] for row in grid] == [["h", ""], ["a", "1"], ["", "2"]]
    assert grid[2][0].header  # the spanned index cell stays an index cell


def test_bad_spans_do_not_blow_up():
    html = "<table><tr><td colspan='x' rowspan=999999999>a</td><td colspan=-3>b</td></tr></table>"
    assert "a" in plain_of(html_renderable(html))


def test_numeric_columns_are_right_aligned():
    html = ("<table class='dataframe'><thead><tr><th></th><th>num</th><th>txt</th></tr></thead>"
            "<tbody><tr><th>0</th><td>1</td><td>a</td></tr>"
            "<tr><th>1</th><td>1000.5</td><td>bbbbbb</td></tr></tbody></table>")
    lines = plain_of(html_renderable(html)).splitlines()
    one = next(line for line in lines if line.split()[:1] == ["0"])
    big = next(line for line in lines if line.split()[:1] == ["1"])
    assert one.index("1 ") + 1 == big.index("1000.5") + len("1000.5")  # right edges meet
    assert one.index("a") == big.index("bbbbbb")  # left edges meet
    assert lines[-1] == "2 rows × 2 columns"


# -- LaTeX ----------------------------------------------------------------------------------
def test_latex_to_unicode_and_its_fallback():
    assert latex_to_unicode(r"$\alpha^2$") == "α^2"
    assert latex_to_unicode(r"\frac{") == r"\frac{"  # malformed: the source, not half of it
    assert markdown_math_to_unicode("price $5 and `$x$` and $\\beta$") == "price $5 and `$x$` and β"


def test_latex_bundle_keeps_plain_to_toggle():
    view = view_bundle({"text/latex": r"$\gamma$", "text/plain": "<Math>"})
    assert plain_of(view.content) == "γ" and view.raw.plain == "<Math>"


# -- images -------------------------------------------------------------------------------------
def test_png_decodes_to_pixels_and_keeps_its_bytes():
    image = image_from_bundle({"image/png": png(30, 10), "text/plain": "x"})
    assert isinstance(image, ImageData) and (image.width, image.height) == (30, 10)
    assert image.pixels.getpixel((0, 0))[:3] == (255, 0, 0)
    assert image.raw.startswith(b"\x89PNG") and image.extension == "png"


def test_png_sibling_wins_over_svg():
    image = image_from_bundle({"image/svg+xml": "<svg/>", "image/png": png(4, 4)})
    assert image.mime == "image/png"


def test_broken_images_raise_a_clear_error():
    with pytest.raises(ImageError, match="not a readable image"):
        image_from_bundle({"image/png": base64.b64encode(b"junk").decode()})
    with pytest.raises(ImageError):
        image_from_bundle({"image/svg+xml": "<svg><unclosed"})
    view = view_bundle({"image/png": "!!!", "text/plain": "Fig"})
    assert "cannot be drawn" in plain_of(view.content) and "Fig" in plain_of(view.content)


def test_images_off_and_svg_without_a_renderer(monkeypatch):
    assert "[image/png" in plain_of(view_bundle({"image/png": png(2, 2)}, images="off").content)
    import ipytui.widgets.image_data as image_data

    monkeypatch.setattr(image_data, "svg_to_png", lambda svg: None)
    view = view_bundle({"image/svg+xml": "<svg/>"})
    assert "install cairosvg" in plain_of(view.content)


@pytest.mark.parametrize(
    ("pixels", "max_w", "max_h", "expected"),
    [
        ((200, 100), 100, 100, (20, 5)),  # natural size fits
        ((2000, 100), 100, 100, (100, 2)),  # too wide: width capped, aspect kept
        ((100, 2000), 100, 20, (2, 20)),  # too tall: height capped
        ((1, 1), 100, 100, (1, 1)),  # never zero
    ],
)
def test_fit_cells(pixels, max_w, max_h, expected):
    assert fit_cells(pixels, (10, 20), max_w, max_h) == expected


# -- saving, config, widgets -----------------------------------------------------------------
def test_saving_picks_a_free_name_and_writes_atomically(tmp_path):
    (tmp_path / "ipytui-image-1.png").write_bytes(b"old")
    path = free_path(tmp_path, "png")
    assert path.name == "ipytui-image-2.png"
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new" and not list(tmp_path.glob("*.part"))
    with pytest.raises(OSError):
        write_atomically(tmp_path / "missing-dir" / "x.png", b"x")


def test_images_setting_is_checked():
    assert parse_config({"images": "sixel"}).images == "sixel"
    bad = parse_config({"images": "ascii-art"})
    assert bad.images == "auto" and "images must be one of" in bad.warnings[0]


def test_widget_models_follow_comm_messages():
    models = WidgetModels()
    opened = {"comm_id": "c1", "target_name": "jupyter.widget",
              "data": {"state": {"_model_name": "IntSliderModel", "value": 1, "description": "n",
                                 "min": 0, "max": 5}}}
    assert models.apply("comm_open", opened) == "c1"
    bundle = {WIDGET_VIEW_MIME: {"model_id": "c1"}, "text/plain": "IntSlider()"}
    assert models.view(bundle).plain == "[widget] IntSlider 'n' = 1 (min 0, max 5)"
    assert models.apply("comm_msg", {"comm_id": "c1", "data": {"method": "update",
                                                               "state": {"value": 4}}}) == "c1"
    assert "= 4" in models.view(bundle).plain
    assert models.apply("comm_msg", {"comm_id": "c1", "data": "junk"}) is None
    models.apply("comm_close", {"comm_id": "c1", "data": {}})
    assert "not seen" in models.view(bundle).plain
    assert describe_state({"_model_name": "DropdownModel", "index": 1,
                           "_options_labels": ["a", "b"]}) == "Dropdown = 'b'"
    box = {"_model_name": "HBoxModel", "children": ["IPY_MODEL_x", "IPY_MODEL_gone"]}
    assert describe_state(box, {"x": {"_model_name": "LabelModel", "value": "a"}}.get) == \
        "HBox (2 children)"  # a child not seen: counted, not guessed


def test_a_styled_dataframe_is_a_table_too():
    pd = pytest.importorskip("pandas", reason="pandas makes the Styler")
    frame = pd.DataFrame({"x": [1.25, 2.5], "label": ["a", "b"]})
    html = frame.style.format("{:.1f}", subset=["x"]).highlight_max(subset=["x"]).to_html()
    lines = plain_of(html_renderable(html)).splitlines()
    assert lines[0].split() == ["x", "label"]
    assert [line.split() for line in lines[2:]] == [["0", "1.2", "a"], ["1", "2.5", "b"]]
    assert "background" not in "\n".join(lines)  # the Styler's CSS is not text


def test_huge_html_falls_back_to_plain_text():
    from ipytui.widgets.mimebundle import MAX_HTML_CHARS, raw_plain, render_bundle

    huge = "<p>x</p>" * (MAX_HTML_CHARS // 8 + 1)
    assert plain_of(render_bundle({"text/html": huge, "text/plain": "short"})) == "short"
    assert raw_plain({"text/html": huge, "text/plain": "short"}) is None
    assert plain_of(render_bundle({"text/html": huge})).startswith("[text/html")


def test_jpeg_decodes_too():
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (0, 0, 255)).save(buf, "JPEG")
    image = image_from_bundle({"image/jpeg": base64.b64encode(buf.getvalue()).decode()})
    assert image.mime == "image/jpeg" and image.extension == "jpg"
    red, green, blue = image.pixels.getpixel((8, 4))[:3]
    assert blue > 200 and red < 40 and green < 40  # JPEG is lossy: close to blue


def test_width_metadata_sets_the_shown_size_with_aspect():
    data = {"image/png": png(200, 100)}
    image = image_from_bundle(data, {"image/png": {"width": 50}})
    assert image.display_pixels == (50, 25) and (image.width, image.height) == (200, 100)
    assert image_from_bundle(data, {"image/png": {"width": "big"}}).display_pixels == (200, 100)
    assert image_from_bundle(data, {"image/png": {"height": 10}}).display_pixels == (20, 10)


def test_halfblock_picture_draws_upper_over_lower_in_runs():
    from ipytui.widgets.halfblock import HalfblockPicture
    from rich.console import Console

    picture = Image.new("RGB", (4, 4), (255, 0, 0))
    picture.paste((0, 0, 255), (0, 2, 4, 4))  # lower half blue
    picture.paste((0, 255, 0), (3, 0, 4, 4))  # right column green
    console = Console(width=10, file=io.StringIO(), color_system="truecolor")
    lines = [[(s.text, s.style.color.triplet, s.style.bgcolor.triplet)
              for s in line if s.style and s.style.color]
             for line in console.render_lines(HalfblockPicture(picture, 4, 2), pad=False)]
    assert [(t, tuple(f), tuple(b)) for t, f, b in lines[0]] == [
        ("▀▀▀", (255, 0, 0), (255, 0, 0)), ("▀", (0, 255, 0), (0, 255, 0))]
    assert [(t, tuple(f), tuple(b)) for t, f, b in lines[1]] == [
        ("▀▀▀", (0, 0, 255), (0, 0, 255)), ("▀", (0, 255, 0), (0, 255, 0))]


def test_too_many_pixels_is_refused_before_decoding(monkeypatch):
    import ipytui.widgets.image_data as image_data

    monkeypatch.setattr(image_data, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="20x20 is too many pixels"):
        image_from_bundle({"image/png": png(20, 20)})


def test_without_textual_image_pictures_stay_labels(monkeypatch):
    import ipytui.widgets.bundle_view as bundle_view

    monkeypatch.setattr(bundle_view, "images_available", lambda: False)
    view = view_bundle({"image/png": png(4, 4), "text/plain": "<Pic>"})
    assert plain_of(view.content).startswith("[image/png") and "<Pic>" in plain_of(view.content)
