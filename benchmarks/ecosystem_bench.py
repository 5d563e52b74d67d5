"""Notebook-library costs on one kernel: a matplotlib figure shown, a widget moved.

- ``plot_show``: ``plt.plot([1, 3, 2]); plt.show()`` until reply and idle
  (pyplot imported before); ``plot_png`` says whether a ``display_data`` with
  ``image/png`` came with it (ipykernel: matplotlib-inline; ipytui: its own
  backend).
- ``widget_update``: a ``comm_msg`` ``{"method": "update", "state": {"value": i}}``
  to an ipywidgets IntSlider, as JupyterLab sends when the slider moves, until
  the kernel's idle for it; ``widget_value_ok`` says whether ``s.value`` is then i.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from typing import Any

Add = Callable[[str, Any], None]
SETUP = "import matplotlib.pyplot as plt\nimport ipywidgets as w\ns = w.IntSlider()"


def _value(client: Any, expr: str) -> Any:
    _, reply = client.wait_done(client.execute("", user_expressions={"v": expr}), 30)
    return ast.literal_eval(reply["user_expressions"]["v"]["data"]["text/plain"])


def measure(client: Any, add: Add, n: int) -> None:
    """n figures shown, then n slider updates; timings and correctness."""
    reply = client.run(SETUP, 120)
    if reply.get("status") != "ok":
        raise AssertionError(f"ecosystem setup failed: {reply}")
    comm_id = _value(client, "s.model_id")
    for _ in range(n):
        t0 = time.perf_counter()
        msg_id = client.execute("plt.plot([1, 3, 2]); plt.show()")
        client.displays[msg_id] = []
        done, _ = client.wait_done(msg_id, 60)
        add("plot_show", (done - t0) * 1e3)
        add("plot_png", float(any("image/png" in keys for keys in client.displays.pop(msg_id))))
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        msg_id = client.send("shell", "comm_msg", {"comm_id": comm_id, "data": {
            "method": "update", "state": {"value": i}, "buffer_paths": []}})
        client.wait_for(lambda m=msg_id: m in client.idle, 30, "the widget update's idle")
        add("widget_update", (client.idle.pop(msg_id) - t0) * 1e3)
        client.busy.pop(msg_id, None)
        add("widget_value_ok", float(_value(client, "s.value") == i))
