"""The cluster's pure parts: engine states, what the supervisor tells and journals,
the event's text, the status bar's text, ``--cluster`` values, engine message lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ipytui.app.cluster_view import message_lines
from ipytui.kernel.client.cluster_iopub import engine_of
from ipytui.kernel.protocol.cluster_spec import ClusterSpecError, check_cluster_spec
from ipytui.kernel.protocol.events import event_text
from ipytui.kernel.protocol.inert import is_inert
from ipytui.kernel.protocol.syntax import transform_cell
from ipytui.kernel.protocol.wire import Message
from ipytui.kernel.supervisor.cluster_owner import ClusterOwner
from ipytui.kernel.worker.cluster_watch import engine_states
from ipytui.widgets.kernel_status import engines_text


def test_engine_states_up_busy_dead() -> None:
    states = engine_states([0, 2], busy={2}, seen={0, 1, 2})
    assert states == [
        {"id": 0, "state": "up"},
        {"id": 1, "state": "dead"},
        {"id": 2, "state": "busy"},
    ]
    assert engines_text(states) == "engines 0 up · 1 dead · 2 busy"
    assert engines_text([]) == ""


def _event(**engines: str) -> dict:
    return {
        "event": "cluster",
        "connection_file": "/x/ipcontroller-client.json",
        "owned": True,
        "owned_pids": [111, 222],
        "cluster_file": "/x/cluster-1.json",
        "engines": [{"id": int(k[1:]), "state": v} for k, v in engines.items()],
    }


def test_owner_journals_membership_and_keeps_busy_flips_live() -> None:
    owner = ClusterOwner("new:2")
    assert owner.worker_config() == {"cluster": "new:2"}
    details, journal = owner.on_event(_event(e0="up", e1="up"))
    assert journal and "owned_pids" not in details and "cluster_file" not in details
    assert owner.owned_pids == [111, 222]
    assert owner.worker_config() == {"cluster": "/x/ipcontroller-client.json"}  # later workers join
    assert owner.on_event(_event(e0="up", e1="up")) is None  # nothing new: nothing told
    assert owner.on_event(_event(e0="busy", e1="up"))[1] is False  # live only
    assert owner.on_event(_event(e0="busy", e1="dead"))[1] is True  # a death is journaled


def test_owner_forgets_a_cluster_that_failed_or_was_left() -> None:
    owner = ClusterOwner("new:2")
    details, journal = owner.on_event({"event": "cluster", "error": "cannot start"})
    assert journal and owner.worker_config() == {}
    owner = ClusterOwner("new:2")
    owner.on_event(_event(e0="up"))
    owner.on_event({"event": "cluster", "engines": [], "connection_file": "", "owned_pids": []})
    assert owner.worker_config() == {} and owner.owned_pids == []


def test_cluster_event_text() -> None:
    assert event_text(_event(e0="up", e1="dead")) == (
        "Cluster (started by the kernel): engines 0 up, 1 dead."
    )
    assert event_text({"event": "cluster", "error": "no engines"}) == "Cluster: no engines"
    assert event_text({"event": "cluster", "connection_file": ""}) == "Cluster: none in use."


def test_cluster_spec_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    assert check_cluster_spec(" new:3 ") == "new:3"
    security = tmp_path / "profile_mpi" / "security"
    security.mkdir(parents=True)
    client = security / "ipcontroller-client.json"
    with pytest.raises(ClusterSpecError, match="no cluster is running in profile 'mpi'"):
        check_cluster_spec("mpi")
    client.write_text(json.dumps({"interface": "tcp://127.0.0.1", "registration": 1, "key": "k"}))
    assert check_cluster_spec("mpi") == str(client.resolve())
    assert check_cluster_spec(str(client)) == str(client.resolve())
    for bad, says in [
        ("new:999", "between 1 and 256"),
        ("a b", "neither new:N"),
        (str(tmp_path), "cannot read"),
    ]:
        with pytest.raises(ClusterSpecError, match=says):
            check_cluster_spec(bad)


def test_engine_topics_and_lines() -> None:
    assert engine_of(b"engine.12.stream") == 12
    assert engine_of(b"engine.x.stream") is None and engine_of(b"kernel.1.status") is None

    def msg(msg_type: str, **content) -> Message:
        return Message(header={"msg_type": msg_type}, content=content)

    assert [t.plain for t in message_lines(msg("stream", name="stdout", text="a\nb\n"))] == [
        "a",
        "b",
    ]
    assert [t.plain for t in message_lines(msg("execute_input", code="x", execution_count=3))] == [
        "In [3]: x"
    ]
    result = msg("execute_result", data={"text/plain": "42"}, execution_count=3)
    assert [t.plain for t in message_lines(result)] == ["Out[3]: 42"]
    error = msg(
        "error", ename="ValueError", evalue="bad", traceback=["\x1b[31mValueError\x1b[0m: bad"]
    )
    assert [t.plain for t in message_lines(error)] == ["ValueError: bad"]
    assert message_lines(msg("status", execution_state="busy")) == []


@pytest.mark.parametrize(
    ("cell", "inert"),
    [
        ("%px print('ok', 1)", True),
        ("%%px --targets 0\nimport os\nprint(1)", True),  # and so every cell under %autopx
        ("%pxresult", True),
        ("%pxconfig --block", False),  # the kernel's own settings: a restore point keeps them
        ("%autopx", False),
        ("%cluster connect x.json", False),
        ("%%timeit\nx = 1", False),
        ("x = 1", False),
    ],
)
def test_px_cells_take_no_restore_point(cell: str, inert: bool) -> None:
    """Code run on the engines leaves the kernel's namespace alone: no fork after it."""
    assert is_inert(transform_cell(cell)) is inert
