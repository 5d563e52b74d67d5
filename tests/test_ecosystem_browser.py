"""A notebook in JupyterLab in headless Chromium, on ipytui and on ipykernel (issue #15).

The same notebook runs on both kernels in one session, as a user would run
it: the plot's ``<img>`` appears, the slider renders, moving it with the
keyboard changes the Python value, a segfault cell is survived (ipytui) or
loses the state (ipykernel, the reference), and the debugger panel stops on a
breakpoint set in a cell's gutter. ``IPYTUI_SCREENSHOTS=1`` saves the
screenshots into screenshots/ (for the README); otherwise into the test's tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipytui.kernel.tools import kernelspec
from jupyterlab_support import LabServer, NotebookPage, chromium, missing

pytestmark = [pytest.mark.timeout(420), pytest.mark.skipif(missing() is not None,
                                                           reason=missing() or "")]

ROOT = Path(__file__).resolve().parent.parent
CELLS = [
    "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
    "import ipywidgets as w\ns = w.IntSlider(value=3)\ns",
    "print('value', s.value)",
    "import ctypes; ctypes.string_at(0)",
    "print('after the crash', s.value)",
    "def add(a, b):\n    total = a + b\n    return total\nadd(2, 3)",
]
PLOT, SLIDER, VALUE, CRASH, AFTER, DEBUG = range(len(CELLS))
KERNELS = {"ipytui": "ipytui", "ipykernel": "python3"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    kernelspec.install(prefix=str(base / "prefix"))
    for label, name in KERNELS.items():
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": name, "display_name": label,
                                           "language": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
        nbformat.write(notebook, root / f"{label}.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_DATA_DIR": str(base / "data"), "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "IPYTUI_DATA_DIR": str(base / "ipytui"), "IPYTHONDIR": str(base / "ipython")}
    server = LabServer(root, base / "prefix" / "share" / "jupyter", env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[NotebookPage]:
    driver = chromium()
    shots = ROOT / "screenshots" if os.environ.get("IPYTUI_SCREENSHOTS") == "1" else tmp_path
    try:
        yield NotebookPage(driver, shots)
    finally:
        driver.quit()


def run_notebook(lab: LabServer, page: NotebookPage, label: str) -> dict[str, Any]:
    """Everything a user would look at, in order; screenshots on the way."""
    seen: dict[str, Any] = {}
    page.driver.get(lab.lab_url(f"{label}.ipynb"))
    page.wait_kernel_idle()

    page.run_cell(PLOT)
    image = page.wait(lambda: page.find(PLOT, ".jp-OutputArea-output img"), "the plot's <img>")
    seen["img"] = image[0].get_attribute("src")

    page.run_cell(SLIDER)
    handle = page.wait(lambda: page.find(SLIDER, ".noUi-handle"), "the slider")[0]
    readout = page.find(SLIDER, ".widget-readout")[0]
    seen["readout_before"] = readout.text
    handle.click()
    page.press("\ue014", times=4)  # ArrowRight, one step each
    page.wait(lambda: readout.text == "7", "the slider to move to 7")
    # ipywidgets sends one update at a time and merges the keys pressed meanwhile into
    # the next one, sent when the kernel is idle after the first: wait until the browser
    # has sent value 7, not until the kernel has applied it. The cell goes right behind
    # the update; the kernel must apply the update first (one order on shell).
    page.wait(lambda: any(b'"comm_msg"' in frame and b'"value":7' in frame
                          for frame in page.sent_frames()), "the browser to send value 7")
    page.run_cell(VALUE)
    seen["value"] = page.wait(lambda: page.output_text(VALUE), "the value cell's output")
    page.shot(f"notebook-{label}-plot-and-slider")

    page.run_cell(CRASH)
    if label == "ipykernel":  # the kernel is gone: JupyterLab says so and restarts it
        seen["crash_dialog"] = page.accept_dialog()
    else:  # the state came back: the report shows under the crashed cell, no dialog
        seen["crash_report"] = page.wait(
            lambda: "Restored" in page.output_text(CRASH) and page.output_text(CRASH),
            "the recovery report under the crashed cell")
    page.wait_kernel_idle()
    page.run_cell(AFTER)
    seen["after"] = page.wait(lambda: page.output_text(AFTER), "the cell after the crash")
    page.shot(f"notebook-{label}-after-crash")

    bug = page.wait(lambda: [b for b in page.driver.find_elements(
        page.by.CSS_SELECTOR, ".jp-DebuggerBugButton") if "disabled" not in b.get_attribute("class")],
        "the debugger switch")[0]
    bug.click()
    page.toggle_breakpoint(DEBUG, 2)
    # The debugger session starts asynchronously: run the cell only once the panel
    # lists the breakpoint (so it was sent to the kernel's debugger).
    page.wait(lambda: page.driver.find_elements(page.by.CSS_SELECTOR, ".jp-DebuggerBreakpoint"),
              "the breakpoint in the debugger panel")
    page.run_cell(DEBUG)
    frames = page.wait(lambda: page.driver.find_elements(
        page.by.CSS_SELECTOR, ".jp-DebuggerCallstackFrame"), "the debugger to stop")
    seen["frames"] = [f.text for f in frames]
    page.shot(f"notebook-{label}-debugger-stopped")
    page.driver.find_element(page.by.XPATH, "//*[starts-with(@title, 'Continue')]").click()
    seen["debugged"] = page.wait(lambda: page.output_text(DEBUG), "the debugged cell's result")
    return seen


def check_common(seen: dict[str, Any]) -> None:
    assert seen["img"].startswith("data:image/png;base64,")
    assert seen["readout_before"] == "3"
    assert seen["value"] == "value 7"  # the Python value followed the slider
    top = seen["frames"][0]
    assert top.startswith("add") and ":2" in top, seen["frames"]  # stopped in the cell, line 2
    assert seen["debugged"] == "5"


def test_notebook_on_ipytui(lab: LabServer, page: NotebookPage) -> None:
    seen = run_notebook(lab, page, "ipytui")
    check_common(seen)
    assert "/ipytui_" in seen["frames"][0]  # the cell's file, named by its hash
    assert seen["after"] == "after the crash 7"  # the state survived the segfault
    assert "KernelDied: segmentation fault" in seen["crash_report"], seen["crash_report"]


def test_same_notebook_on_ipykernel_for_reference(lab: LabServer, page: NotebookPage) -> None:
    seen = run_notebook(lab, page, "ipykernel")
    check_common(seen)
    assert "NameError" in seen["after"]  # ipykernel lost the state with the process
