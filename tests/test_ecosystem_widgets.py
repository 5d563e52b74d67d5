"""Comms and ipywidgets in the ipytui kernel, through jupyter_client (issue #15).

A client plays the front end: it reads the widget models' ``comm_open`` on
IOPub and sends ``comm_msg`` updates as JupyterLab does when a slider moves;
the Python side must follow. Comms opened from the client reach targets that
user code registered; comms survive interrupts; after a crash restore they are
closed with a reason, so the front end keeps no dead widget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from jupyter_client.blocking.client import BlockingKernelClient
from test_ecosystem_plots import value_of
from test_jupyter_client import (  # noqa: F401 - fixtures used by name
    TIMEOUT,
    fresh,
    iopub_until,
    ipytui_kernelspecs,
    run,
    shared,
)

pytestmark = pytest.mark.timeout(180)

Msg = dict[str, Any]


def send_comm(kc: BlockingKernelClient, msg_type: str, content: dict[str, Any],
              metadata: dict[str, Any] | None = None) -> list[Msg]:
    """Send a comm message as a front end does; the IOPub messages it caused, up to its idle."""
    msg = kc.session.msg(msg_type, content, metadata=metadata)
    kc.shell_channel.send(msg)
    return iopub_of(kc, msg["header"]["msg_id"])


def iopub_of(kc: BlockingKernelClient, msg_id: str,
             keep: Callable[[Msg], bool] | None = None) -> list[Msg]:
    """IOPub messages whose parent is msg_id (or for which keep holds), until msg_id's
    idle status."""
    seen: list[Msg] = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        mine = msg["parent_header"].get("msg_id") == msg_id
        if not mine and not (keep is not None and keep(msg)):
            continue
        seen.append(msg)
        if mine and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return seen


def update(kc: BlockingKernelClient, comm_id: str, state: dict[str, Any]) -> list[Msg]:
    """What JupyterLab sends when the user changes a widget."""
    return send_comm(kc, "comm_msg", {"comm_id": comm_id,
                                      "data": {"method": "update", "state": state,
                                               "buffer_paths": []}})


def model_opens(seen: list[Msg], model: str) -> list[Msg]:
    return [m for m in seen if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"].get("_model_name") == model]


def comms_listed(kc: BlockingKernelClient, target: str | None = None) -> dict[str, Any]:
    kc.comm_info(target)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["msg_type"] == "comm_info_reply" and reply["content"]["status"] == "ok"
    return reply["content"]["comms"]


def test_slider_round_trip(shared: BlockingKernelClient) -> None:  # noqa: F811
    reply, seen = run(shared, "import ipywidgets as w\nslider = w.IntSlider(value=3)\nslider")
    assert reply["content"]["status"] == "ok"
    (opened,) = model_opens(seen, "IntSliderModel")
    assert opened["content"]["target_name"] == "jupyter.widget"
    assert opened["content"]["data"]["state"]["value"] == 3
    comm_id = opened["content"]["comm_id"]
    (result,) = [m for m in seen if m["msg_type"] == "execute_result"]
    assert result["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        comm_id
    assert comms_listed(shared, "jupyter.widget")[comm_id] == {"target_name": "jupyter.widget"}

    caused = update(shared, comm_id, {"value": 7})
    assert caused[0]["content"]["execution_state"] == "busy"
    assert value_of(shared, "slider.value") == 7
    # and the other way: Python sets the value, the front end is told
    reply, seen = run(shared, "slider.value = 9")
    updates = [m["content"]["data"] for m in seen if m["msg_type"] == "comm_msg"
               and m["content"]["comm_id"] == comm_id]
    assert updates and updates[-1]["state"] == {"value": 9}


ORDER_ROUNDS = 25  # the race this catches was intermittent: many rounds, one kernel


@pytest.mark.parametrize("kernel", ["ipytui", "python3"])  # python3: ipykernel, the reference
def test_a_cell_right_after_slider_updates_sees_the_last_one(
        fresh: Callable[..., Any], kernel: str) -> None:  # noqa: F811
    """Updates sent just before a cell, without waiting for their idle, are applied
    before the cell runs: one order on the shell channel, as ipykernel keeps it."""
    km, kc = fresh(kernel)
    reply, seen = run(kc, "import ipywidgets as w\nslider = w.IntSlider(max=100_000)\nslider")
    (opened,) = model_opens(seen, "IntSliderModel")
    comm_id = opened["content"]["comm_id"]
    read: list[int] = []
    for round_ in range(ORDER_ROUNDS):
        for step in range(1, 6):
            kc.shell_channel.send(kc.session.msg("comm_msg", {
                "comm_id": comm_id, "data": {"method": "update", "buffer_paths": [],
                                             "state": {"value": round_ * 10 + step}}}))
        read.append(value_of(kc, "slider.value"))
    assert read == [round_ * 10 + 5 for round_ in range(ORDER_ROUNDS)]


@pytest.mark.parametrize("kernel", ["ipytui", "python3"])
def test_an_update_sent_while_a_cell_runs_waits_for_it(
        fresh: Callable[..., Any], kernel: str, tmp_path: Path) -> None:  # noqa: F811
    """ipykernel's order: a comm message is not applied beside a running cell, but
    right after it, before the next cell."""
    km, kc = fresh(kernel)
    reply, seen = run(kc, "import ipywidgets as w\nslider = w.IntSlider(value=1)\nslider")
    (opened,) = model_opens(seen, "IntSliderModel")
    go = tmp_path / "go"
    cell = kc.execute("import os, time\nbefore = slider.value\n"
                      f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.01)\n"
                      "after = slider.value")
    iopub_until(kc, lambda m: m["parent_header"].get("msg_id") == cell
                and m["msg_type"] == "execute_input")
    sent = kc.session.msg("comm_msg", {"comm_id": opened["content"]["comm_id"],
                                       "data": {"method": "update", "buffer_paths": [],
                                                "state": {"value": 2}}})
    kc.shell_channel.send(sent)
    go.touch()
    statuses = iopub_of(kc, sent["header"]["msg_id"], keep=lambda m: m["msg_type"] == "status")
    order = [(m["parent_header"].get("msg_id"), m["content"]["execution_state"])
             for m in statuses if m["msg_type"] == "status"]
    assert order.index((cell, "idle")) < order.index((sent["header"]["msg_id"], "busy"))
    assert value_of(kc, "(before, after, slider.value)") == (1, 1, 2)


@pytest.mark.parametrize("kernel", ["ipytui", "python3"])
def test_a_failed_cell_aborts_the_executes_behind_it_not_the_updates(
        fresh: Callable[..., Any], kernel: str, tmp_path: Path) -> None:  # noqa: F811
    """stop_on_error aborts queued executes only; a queued update is still applied."""
    km, kc = fresh(kernel)
    reply, seen = run(kc, "import ipywidgets as w\nslider = w.IntSlider(value=1)\nslider")
    (opened,) = model_opens(seen, "IntSliderModel")
    go = tmp_path / "go"
    failing = kc.execute(f"import os, time\nwhile not os.path.exists({str(go)!r}):\n"
                         "    time.sleep(0.01)\n1 / 0")
    iopub_until(kc, lambda m: m["parent_header"].get("msg_id") == failing
                and m["msg_type"] == "execute_input")
    kc.shell_channel.send(kc.session.msg("comm_msg", {
        "comm_id": opened["content"]["comm_id"],
        "data": {"method": "update", "buffer_paths": [], "state": {"value": 5}}}))
    behind = kc.execute("slider.value")
    go.touch()
    replies = {}
    while behind not in replies:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        replies[reply["parent_header"]["msg_id"]] = reply["content"]["status"]
    # Nothing answers the comm_msg. "aborted" is the usual case; on a loaded machine the
    # execute may reach the kernel after the error and run: after the update, then.
    assert replies in ({failing: "error", behind: "aborted"}, {failing: "error", behind: "ok"})
    if replies[behind] == "ok":
        result = iopub_until(kc, lambda m: m["parent_header"].get("msg_id") == behind
                             and m["msg_type"] == "execute_result")
        assert result["content"]["data"]["text/plain"] == "5"
    assert value_of(kc, "slider.value") == 5


@pytest.mark.parametrize("kernel", ["ipytui", "python3"])
def test_an_interrupt_ends_a_comm_callback(fresh: Callable[..., Any], kernel: str) -> None:  # noqa: F811
    """A comm callback runs where a cell would, so an interrupt ends it as it ends a cell."""
    km, kc = fresh(kernel)
    reply, _ = run(kc, "import time\n"
                       "def slow(comm, open_msg):\n"
                       "    comm.on_msg(lambda m: (print('called', flush=True), time.sleep(300)))\n"
                       "get_ipython().kernel.comm_manager.register_target('slow', slow)")
    assert reply["content"]["status"] == "ok"
    send_comm(kc, "comm_open", {"comm_id": "c-slow", "target_name": "slow", "data": {}})
    msg = kc.session.msg("comm_msg", {"comm_id": "c-slow", "data": {}})
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    iopub_until(kc, lambda m: m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "stream" and "called" in m["content"]["text"])
    km.interrupt_kernel()
    caused = iopub_of(kc, msg_id)
    if kernel == "ipytui":  # ipykernel only logs it
        assert [m["content"]["ename"] for m in caused if m["msg_type"] == "error"] == \
            ["KeyboardInterrupt"]
    assert value_of(kc, "1 + 1") == 2


def test_interact_reruns_its_function_into_its_output_widget(
        shared: BlockingKernelClient) -> None:  # noqa: F811
    reply, seen = run(shared, "import ipywidgets as w\ncalls = []\n"
                              "def f(x=1):\n    calls.append(x)\n    print('f got', x)\n"
                              "shown = w.interact(f, x=(0, 10))")
    assert reply["content"]["status"] == "ok"
    assert value_of(shared, "calls") == [1]
    slider_id = value_of(shared, "shown.widget.children[0].model_id")
    output_id = value_of(shared, "shown.widget.out.model_id")
    caused = update(shared, slider_id, {"value": 4})
    assert value_of(shared, "calls") == [1, 4]
    update_id = caused[0]["parent_header"]["msg_id"]
    # The Output widget captures what the re-run printed: its msg_id names the update
    # while the function runs, and the text comes with that parent.
    capture = [m["content"]["data"]["state"].get("msg_id") for m in caused
               if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == output_id]
    assert capture[:1] == [update_id] and capture[-1] == ""
    printed = "".join(m["content"]["text"] for m in caused if m["msg_type"] == "stream")
    assert printed == "f got 4\n"


def test_output_widget_captures_a_cells_output(shared: BlockingKernelClient) -> None:  # noqa: F811
    reply, seen = run(shared, "import ipywidgets as w\nout = w.Output()\n"
                              "with out:\n    print('inside')\nprint('outside')")
    cell_id = reply["parent_header"]["msg_id"]
    (opened,) = model_opens(seen, "OutputModel")
    out_id = opened["content"]["comm_id"]
    states = [(i, m["content"]["data"]["state"]["msg_id"]) for i, m in enumerate(seen)
              if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == out_id]
    inside = next(i for i, m in enumerate(seen) if m["msg_type"] == "stream"
                  and "inside" in m["content"]["text"])
    assert [s for _, s in states] == [cell_id, ""]
    assert states[0][0] < inside < states[1][0]  # printed while the widget captured


def test_comm_targets_from_the_front_end(shared: BlockingKernelClient) -> None:  # noqa: F811
    reply, _ = run(shared, "closed = []\n"
                           "def echo_target(comm, open_msg):\n"
                           "    comm.on_msg(lambda m: comm.send({'echo': m['content']['data']}))\n"
                           "    comm.on_close(lambda m: closed.append(comm.comm_id))\n"
                           "    comm.send({'opened_with': open_msg['content']['data']})\n"
                           "get_ipython().kernel.comm_manager.register_target('echo', echo_target)")
    assert reply["content"]["status"] == "ok"
    seen = send_comm(shared, "comm_open", {"comm_id": "c-echo", "target_name": "echo",
                                           "data": {"n": 1}})
    sent = [m["content"]["data"] for m in seen if m["msg_type"] == "comm_msg"]
    assert sent == [{"opened_with": {"n": 1}}]
    assert "c-echo" in comms_listed(shared)
    seen = send_comm(shared, "comm_msg", {"comm_id": "c-echo", "data": {"ping": 2}})
    assert [m["content"]["data"] for m in seen if m["msg_type"] == "comm_msg"] == \
        [{"echo": {"ping": 2}}]
    send_comm(shared, "comm_close", {"comm_id": "c-echo", "data": {}})
    assert value_of(shared, "closed") == ["c-echo"]
    assert "c-echo" not in comms_listed(shared)
    # No such target: closed at once, saying why; the kernel goes on.
    seen = send_comm(shared, "comm_open", {"comm_id": "c-none", "target_name": "nope", "data": {}})
    (close,) = [m for m in seen if m["msg_type"] == "comm_close"]
    assert close["content"]["comm_id"] == "c-none" and "nope" in close["content"]["data"]["reason"]
    # A target that fails: its traceback is shown, the comm closed.
    run(shared, "get_ipython().kernel.comm_manager.register_target('bad', lambda c, m: 1 / 0)")
    seen = send_comm(shared, "comm_open", {"comm_id": "c-bad", "target_name": "bad", "data": {}})
    kinds = [m["msg_type"] for m in seen]
    assert "error" in kinds and "comm_close" in kinds
    assert value_of(shared, "1 + 1") == 2


def test_comms_survive_an_interrupt(fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    reply, seen = run(kc, "import ipywidgets as w\nslider = w.IntSlider()\nslider")
    (opened,) = model_opens(seen, "IntSliderModel")
    received: list[Msg] = []
    kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    wait_until(lambda: any(m["msg_type"] == "stream" for m in take_iopub(kc, received)),
               what="the sleeping cell to start")
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    update(kc, opened["content"]["comm_id"], {"value": 5})
    assert value_of(kc, "slider.value") == 5


def take_iopub(kc: BlockingKernelClient, received: list[Msg]) -> list[Msg]:
    """Append the IOPub messages available now to received; returns received."""
    while True:
        try:
            received.append(kc.get_iopub_msg(timeout=0.1))
        except Exception:  # queue.Empty: nothing more for now
            return received


def test_widgets_are_closed_after_a_crash_restore(fresh: Callable[..., Any]) -> None:  # noqa: F811
    km, kc = fresh()
    reply, seen = run(kc, "import ipywidgets as w\nslider = w.IntSlider()\nslider")
    (opened,) = model_opens(seen, "IntSliderModel")
    slider_id = opened["content"]["comm_id"]
    assert slider_id in comms_listed(kc)
    kc.execute("import ctypes; ctypes.string_at(0)")
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["ename"] == "KernelDied"
    received: list[Msg] = []

    def closes() -> dict[str, Msg]:
        return {m["content"]["comm_id"]: m for m in take_iopub(kc, received)
                if m["msg_type"] == "comm_close"}

    wait_until(lambda: slider_id in closes(), what="the slider's comm_close")
    assert "restored" in closes()[slider_id]["content"]["data"]["reason"]
    assert comms_listed(kc) == {}
    assert value_of(kc, "slider.comm is None") is True
    # A comm the restored worker does not know (the crashed cell's): closed on first contact.
    seen = update(kc, "from-the-crashed-cell", {"value": 1})
    assert [m["content"]["comm_id"] for m in seen if m["msg_type"] == "comm_close"] == \
        ["from-the-crashed-cell"]


def test_a_reloaded_page_gets_every_widgets_state(shared: BlockingKernelClient) -> None:  # noqa: F811
    """JupyterLab asks through ``jupyter.widget.control`` after a reload, to redraw widgets."""
    reply, seen = run(shared, "import ipywidgets as w\nkept_slider = w.IntSlider(value=11)\n"
                              "kept_slider.model_id")
    model_id = next(m for m in seen if m["msg_type"] == "execute_result")["content"]["data"]
    model_id = model_id["text/plain"].strip("'")
    send_comm(shared, "comm_open", {"comm_id": "c-control", "target_name": "jupyter.widget.control",
                                    "data": {}}, metadata={"version": "1.0.0"})
    seen = send_comm(shared, "comm_msg", {"comm_id": "c-control",
                                          "data": {"method": "request_states"}})
    (answer,) = [m["content"]["data"] for m in seen if m["msg_type"] == "comm_msg"
                 and m["content"]["comm_id"] == "c-control"]
    assert answer["method"] == "update_states"
    assert answer["states"][model_id]["state"]["value"] == 11


def test_a_tqdm_progress_bar_reads_as_text_in_the_ui(shared: BlockingKernelClient) -> None:  # noqa: F811
    """tqdm's notebook bar (what ipyparallel shows while engines start) is an HBox of
    text, progress and text: the UI's line names all three, as the comms left them."""
    pytest.importorskip("tqdm")
    from ipytui.app.widget_models import WIDGET_VIEW_MIME, WidgetModels

    reply, seen = run(shared, "from tqdm.notebook import tqdm\n"
                              "for _ in tqdm(range(3), desc='engines'): pass")
    assert reply["content"]["status"] == "ok"
    models = WidgetModels()
    for msg in seen:
        if msg["msg_type"].startswith("comm_"):
            models.apply(msg["msg_type"], msg["content"])
    shown = [m["content"]["data"] for m in seen if m["msg_type"] == "display_data"
             and WIDGET_VIEW_MIME in m["content"]["data"]]
    assert len(shown) == 1, seen
    line = models.view(shown[0]).plain
    assert line.startswith("[widget] HBox: engines"), line  # not "HBox (3 children)"
    assert "| FloatProgress 100% = 3" in line and "| 3/3" in line, line
    progress = next(cid for cid, state in models.states.items()
                    if state.get("_model_name") == "FloatProgressModel")
    assert models.containers_of(progress)  # its HBox's view is redrawn when it moves
