"""Notebook libraries inside the ipytui kernel, through jupyter_client (issue #15).

matplotlib's figures arrive as PNG (and SVG on request) the three ways a
notebook shows them; ``get_ipython()`` is there for libraries that probe it
(tqdm.auto picks its notebook class, rich its Jupyter rendering, IPython's
own ``get_ipython``/``display`` reach the worker). The same checks that a
notebook user would notice, against a real kernel subprocess.
"""

from __future__ import annotations

import ast
import base64
import os
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from test_jupyter_client import (  # noqa: F401 - fixtures used by name
    TIMEOUT,
    fresh,
    ipytui_kernelspecs,
    outputs,
    run,
    shared,
    stop,
)

pytestmark = pytest.mark.timeout(180)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def value_of(kc: BlockingKernelClient, expr: str) -> Any:
    """A literal expression's value, evaluated in the kernel."""
    reply, seen = run(kc, expr)
    assert reply["content"]["status"] == "ok", reply["content"]
    results = [m for m in seen if m["msg_type"] == "execute_result"]
    assert len(results) == 1, seen
    return ast.literal_eval(results[0]["content"]["data"]["text/plain"])


def images(seen: list[dict[str, Any]], msg_type: str = "display_data") -> list[dict[str, Any]]:
    """The bundles of ``msg_type`` messages that carry a PNG."""
    return [m["content"]["data"] for m in seen
            if m["msg_type"] == msg_type and "image/png" in m["content"]["data"]]


def assert_png(bundle: dict[str, Any]) -> None:
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert bundle["text/plain"].startswith("<Figure size")


@pytest.fixture(scope="module")
def mpl(shared: BlockingKernelClient) -> BlockingKernelClient:  # noqa: F811
    reply, _ = run(shared, "import matplotlib.pyplot as plt")
    assert reply["content"]["status"] == "ok"
    return shared


def test_backend_is_ours_by_default(mpl: BlockingKernelClient) -> None:
    assert value_of(mpl, "import matplotlib; matplotlib.get_backend()") == \
        "module://ipytui.kernel.worker.mpl_backend"
    # chosen inside the worker only: programs a cell starts inherit no backend
    assert value_of(mpl, "import subprocess, sys\nsubprocess.run([sys.executable, '-c', "
                         "'import os; print(os.environ.get(\"MPLBACKEND\"))'], "
                         "capture_output=True, text=True).stdout") == "None\n"


def test_plt_show_displays_a_png_and_closes_the_figure(mpl: BlockingKernelClient) -> None:
    reply, seen = run(mpl, "plt.plot([1, 3, 2]); plt.show()")
    assert reply["content"]["status"] == "ok"
    shown = images(seen)
    assert len(shown) == 1, outputs(seen)
    assert_png(shown[0])
    assert value_of(mpl, "plt.get_fignums()") == []


def test_figure_as_last_expression_is_the_result_and_shown_once(mpl: BlockingKernelClient) -> None:
    reply, seen = run(mpl, "fig, ax = plt.subplots(); ax.plot([3, 1]); fig")
    assert reply["content"]["status"] == "ok"
    results = images(seen, "execute_result")
    assert len(results) == 1
    assert_png(results[0])
    assert images(seen) == []  # not shown a second time at the end of the cell
    assert value_of(mpl, "plt.get_fignums()") == []
    reply, seen = run(mpl, "fig")  # a closed figure still renders when asked for
    assert len(images(seen, "execute_result")) == 1


def test_figures_left_open_are_shown_when_the_cell_ends(mpl: BlockingKernelClient) -> None:
    reply, seen = run(mpl, "plt.figure(); plt.plot([1, 2])\nplt.figure(); plt.bar([1], [2])\n"
                           "print('before the figures')")
    assert reply["content"]["status"] == "ok"
    kinds = [m["msg_type"] for m in outputs(seen)]
    assert kinds == ["stream", "display_data", "display_data"], kinds
    for bundle in images(seen):
        assert_png(bundle)
    assert value_of(mpl, "plt.get_fignums()") == []
    reply, seen = run(mpl, "plt.figure()")  # an empty figure is not worth an image
    assert images(seen) == []


def test_svg_on_request_and_bad_config_is_refused(mpl: BlockingKernelClient) -> None:
    reply, _ = run(mpl, "%config InlineBackend.figure_formats = ['png', 'svg']")
    assert reply["content"]["status"] == "ok"
    try:
        reply, seen = run(mpl, "plt.plot([1, 2]); plt.show()")
        (bundle,) = images(seen)
        assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
        assert "<svg" in bundle["image/svg+xml"]
        assert_png(bundle)
        reply, seen = run(mpl, "%config InlineBackend.figure_formats = ['gif']")
        assert reply["content"]["status"] == "error"
        assert "unknown figure format" in reply["content"]["evalue"]
        assert value_of(mpl, "get_ipython().config['InlineBackend']['figure_formats']") == \
            ["png", "svg"]  # the refused setting changed nothing
    finally:
        run(mpl, "%config InlineBackend.figure_format = 'png'")
    reply, seen = run(mpl, "plt.plot([1, 2]); plt.show()")
    assert "image/svg+xml" not in images(seen)[0]


def test_mplbackend_is_respected_and_matplotlib_inline_switches_back(
        ipytui_kernelspecs) -> None:  # noqa: F811
    km = KernelManager(kernel_name="ipytui")
    km.start_kernel(env={**os.environ, "MPLBACKEND": "agg"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        assert value_of(kc, "import matplotlib.pyplot as plt; plt.get_backend()").lower() == "agg"
        reply, seen = run(kc, "plt.plot([1, 2])")
        assert images(seen) == []  # agg shows nothing, as the user asked
        reply, seen = run(kc, "%matplotlib inline\nplt.plot([1, 2]); plt.show()")
        assert reply["content"]["status"] == "ok"
        assert len(images(seen)) == 1
        reply, _ = run(kc, "%matplotlib no-such-backend")
        assert reply["content"]["status"] == "error"
        assert "no-such-backend" in reply["content"]["evalue"]
    finally:
        stop(km, kc)


# -- get_ipython() ------------------------------------------------------------
def test_get_ipython_events_config_and_magics(shared: BlockingKernelClient) -> None:  # noqa: F811
    reply, _ = run(shared, "ip = get_ipython(); seen_events = []\n"
                           "ip.events.register('pre_execute', lambda: seen_events.append('pre'))\n"
                           "ip.events.register('post_run_cell', lambda r: seen_events.append(r.success))")
    assert reply["content"]["status"] == "ok"
    run(shared, "1 / 0")
    # the registering cell's own post_run_cell, then the failed cell's pre and post
    assert value_of(shared, "seen_events[:3]") == [True, "pre", False]
    assert value_of(shared, "'IPKernelApp' in ip.config, ip.user_ns is globals()") == (True, True)
    assert value_of(shared, "ip.kernel.get_parent()['header']['msg_type']") == "execute_request"
    reply, seen = run(shared, "zz_defined = 1\nip.run_line_magic('who', '')")
    assert "zz_defined" in "".join(m["content"].get("text", "") for m in seen)
    reply, _ = run(shared, "ip.events.register('no_such_event', print)")
    assert reply["content"]["ename"] == "KeyError"


def test_ipython_sees_our_shell_and_display(shared: BlockingKernelClient) -> None:  # noqa: F811
    assert value_of(shared, "import IPython; IPython.get_ipython() is get_ipython()") is True
    reply, seen = run(shared, "from IPython.display import display, HTML\n"
                              "display(HTML('<b>bold</b>'))")
    data = [m["content"]["data"] for m in seen if m["msg_type"] == "display_data"]
    assert data and data[0]["text/html"] == "<b>bold</b>"


def test_tqdm_auto_and_rich_pick_their_notebook_paths(shared: BlockingKernelClient) -> None:  # noqa: F811
    assert value_of(shared, "import tqdm.auto, tqdm.notebook, sys\n"
                            "(issubclass(tqdm.auto.tqdm, tqdm.notebook.tqdm_notebook),"
                            " 'ipykernel.zmqshell' in sys.modules)") == (True, False)
    reply, seen = run(shared, "for _ in tqdm.auto.tqdm(range(3)): pass")
    assert reply["content"]["status"] == "ok"
    assert any(m["msg_type"] == "comm_open" for m in seen)  # the progress bar is a widget
    assert value_of(shared, "import rich; rich.get_console().is_jupyter") is True


def test_plotly_and_pandas_pick_their_notebook_paths(shared: BlockingKernelClient) -> None:  # noqa: F811
    pytest.importorskip("plotly")
    pytest.importorskip("pandas")
    assert "plotly_mimetype" in value_of(shared, "import plotly.io as pio; pio.renderers.default")
    reply, seen = run(shared, "import plotly.express as px\n"
                              "px.line(x=[1, 2, 3], y=[1, 3, 2]).show()")
    assert reply["content"]["status"] == "ok"
    assert any("application/vnd.plotly.v1+json" in m["content"].get("data", {})
               for m in outputs(seen) if m["msg_type"] == "display_data")
    assert value_of(shared, "import pandas as pd; pd.io.formats.console.in_interactive_session()")
    reply, seen = run(shared, "pd.DataFrame({'a': [1, 2]})")
    results = [m for m in outputs(seen) if m["msg_type"] == "execute_result"]
    assert results and "<table" in results[0]["content"]["data"]["text/html"]
