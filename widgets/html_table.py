"""HTML tables (pandas DataFrames above all) as Rich tables.

Header rows come from ``<thead>`` (or leading rows of ``<th>`` only), index
cells (``<th>`` in the body) are bold, numeric columns are right-aligned,
``rowspan``/``colspan`` are spread into the grid (a spanned cell shows once,
as pandas prints a MultiIndex), pandas' ``...`` becomes a ``…`` mark, and a
DataFrame without its ``N rows × M columns`` line gets one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .html_tree import Element

# Cells of pandas' truncated rows and columns.
_ELLIPSES = {"...", "…", "⋮", "⋯"}
_NUMBER = re.compile(r"^[-+]?(\d[\d,_]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")
_MISSING = {"", "nan", "NaN", "<NA>", "NaT", "None", "inf", "-inf"}
MAX_COLUMNS = 200
MAX_ROWS = 2000


@dataclass
class Cell:
    text: str
    header: bool


def _cell_text(element: Element) -> str:
    text = " ".join(element.text().replace("\xa0", " ").split())
    return "…" if text in _ELLIPSES else text


def _rows(table: Element) -> list[tuple[bool, list[Element]]]:
    """(in thead?, cells) for every row, in order."""
    rows: list[tuple[bool, list[Element]]] = []

    def walk(element: Element, in_head: bool) -> None:
        for child in element.children:
            if not isinstance(child, Element) or child.tag == "table":
                continue
            if child.tag == "tr":
                cells = [c for c in child.children if isinstance(c, Element) and c.tag in ("td", "th")]
                rows.append((in_head, cells))
            else:
                walk(child, in_head or child.tag == "thead")

    walk(table, False)
    return rows[:MAX_ROWS]


def _span(element: Element, name: str) -> int:
    try:
        return max(1, min(int(element.attrs.get(name, "1")), MAX_COLUMNS))
    except ValueError:
        return 1


def grid_of(table: Element) -> tuple[list[list[Cell]], int]:
    """The table as a rectangular grid of cells and the number of header rows."""
    grid: list[list[Cell]] = []
    carried: dict[int, tuple[int, bool]] = {}  # column -> (rows still spanned, is a header)
    heads: list[bool] = []
    for in_head, cells in _rows(table):
        row: list[Cell] = []
        queue = list(cells)
        column = 0
        while (queue or any(c >= column for c in carried)) and column < MAX_COLUMNS:
            if column in carried:
                left, header = carried.pop(column)
                if left > 1:
                    carried[column] = (left - 1, header)
                row.append(Cell("", header=header))
                column += 1
                continue
            if not queue:
                column += 1
                row.append(Cell("", header=False))
                continue
            element = queue.pop(0)
            colspan, rowspan = _span(element, "colspan"), _span(element, "rowspan")
            for offset in range(colspan):
                row.append(Cell(_cell_text(element) if offset == 0 else "", element.tag == "th"))
                if rowspan > 1:
                    carried[column + offset] = (min(rowspan, MAX_ROWS) - 1, element.tag == "th")
            column += colspan
        grid.append(row)
        heads.append(in_head)
    if any(heads):
        head_rows = next((i for i, h in enumerate(heads) if not h), len(heads))
    else:  # no <thead>: leading rows of <th> only are the header
        head_rows = next((i for i, r in enumerate(grid) if not all(c.header for c in r)), 0)
    width = max((len(r) for r in grid), default=0)
    for row in grid:
        row.extend(Cell("", False) for _ in range(width - len(row)))
    return grid, head_rows


def _numeric(column: list[Cell]) -> bool:
    values = [c.text for c in column if not c.header and c.text not in _MISSING and c.text != "…"]
    return bool(values) and all(_NUMBER.match(v) for v in values)


def _shape_line(table: Element, body: list[list[Cell]], index_columns: int, width: int) -> str:
    if "dataframe" not in table.attrs.get("class", "").split():
        return ""
    rows = sum(1 for r in body if not all(c.text == "…" for c in r[index_columns:] if c.text))
    return f"{rows} rows × {width - index_columns} columns"


def render_table(table: Element, *, shape_known: bool = False) -> RenderableType:
    """A Rich table for an HTML ``<table>``; ``shape_known`` when a shape line follows it."""
    grid, head_rows = grid_of(table)
    if not grid or not grid[0]:
        return Text("")
    header, body = grid[:head_rows], grid[head_rows:]
    width = len(grid[0])
    index_columns = 0
    while index_columns < width and body and all(r[index_columns].header for r in body):
        index_columns += 1
    rich_table = Table(
        box=box.SIMPLE_HEAD, show_header=bool(header), show_edge=False, pad_edge=False
    )
    for col in range(width):
        title = "\n".join(r[col].text for r in header if r[col].text)
        numeric = _numeric([r[col] for r in body])
        rich_table.add_column(
            title,
            justify="right" if numeric or col < index_columns else "left",
            style="bold" if col < index_columns else None,
            header_style="bold",
            overflow="ellipsis",
            no_wrap=True,
        )
    for row in body:
        rich_table.add_row(*(Text(c.text, style="bold" if c.header else "") for c in row))
    shape = "" if shape_known else _shape_line(table, body, index_columns, width)
    return Group(rich_table, Text(shape, style="italic")) if shape else rich_table
