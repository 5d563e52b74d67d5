"""nbclient runs a notebook on the ipytui kernel (by kernelspec name), as nbconvert would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from ipytui.kernel.tools import kernelspec
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def ipytui_kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("nbclient")
    kernelspec.install(prefix=str(root / "prefix"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "prefix" / "share" / "jupyter"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTUI_DATA_DIR", str(root / "ipytui"))
        yield root


RICH = '''\
class Card:
    def __init__(self, title):
        self.title = title
    def _repr_html_(self):
        return f"<h3>{self.title}</h3>"
    def _repr_markdown_(self):
        return f"### {self.title}"
    def __repr__(self):
        return f"Card({self.title!r})"
Card("ipytui")'''


def execute(nb: nbformat.NotebookNode, **kwargs) -> nbformat.NotebookNode:
    client = NotebookClient(nb, kernel_name="ipytui", timeout=60, startup_timeout=60, **kwargs)
    return client.execute()


def test_notebook_of_several_cells() -> None:
    nb = new_notebook(cells=[
        new_code_cell("print('hello')\nimport sys\nprint('oops', file=sys.stderr)"),
        new_code_cell("total = sum(range(10))\ntotal"),
        new_code_cell("display({'text/plain': 'shown', 'text/html': '<b>shown</b>'}, raw=True)\n"
                      "display(total * 2)"),
        new_code_cell(RICH),
        new_code_cell("raise ValueError('expected failure')",
                      metadata={"tags": ["raises-exception"]}),
        new_code_cell("print('after the error', total)"),
    ])
    nb.metadata["kernelspec"] = {"name": "ipytui", "display_name": "Python 3 (ipytui)",
                                 "language": "python"}
    result = execute(nb)
    cells = result.cells
    assert result.metadata["language_info"]["name"] == "python"

    first = cells[0].outputs
    assert [(o.output_type, o.name, o.text) for o in first] == [
        ("stream", "stdout", "hello\n"), ("stream", "stderr", "oops\n")]

    assert cells[1].execution_count == 2
    (result_out,) = cells[1].outputs
    assert result_out.output_type == "execute_result"
    assert result_out.data["text/plain"] == "45"
    assert result_out.execution_count == 2

    shown, doubled = cells[2].outputs
    assert shown.output_type == doubled.output_type == "display_data"
    assert shown.data == {"text/plain": "shown", "text/html": "<b>shown</b>"}
    assert doubled.data == {"text/plain": "90"}

    (rich,) = cells[3].outputs
    assert rich.output_type == "execute_result"
    assert rich.data["text/html"] == "<h3>ipytui</h3>"
    assert rich.data["text/markdown"] == "### ipytui"
    assert rich.data["text/plain"] == "Card('ipytui')"

    (error,) = cells[4].outputs
    assert error.output_type == "error"
    assert (error.ename, error.evalue) == ("ValueError", "expected failure")
    assert any("expected failure" in line for line in error.traceback)

    # The allowed error did not stop the notebook.
    assert [(o.output_type, o.text) for o in cells[5].outputs] == [
        ("stream", "after the error 45\n")]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6]


def test_an_unexpected_error_stops_the_notebook() -> None:
    nb = new_notebook(cells=[
        new_code_cell("x = 1"),
        new_code_cell("1 / 0"),
        new_code_cell("print('never')"),
    ])
    with pytest.raises(CellExecutionError) as info:
        execute(nb)
    assert "ZeroDivisionError" in str(info.value)
    assert nb.cells[2].outputs == []
