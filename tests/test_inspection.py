"""Unit tests for kernel/inspection.py: inspect_request replies and `obj?` help text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ipytui.kernel.worker import jedi_runner
from ipytui.kernel.worker.inspection import inspect_request, object_help


def sample(a, b=2):
    """Add a and b.

    Longer explanation of the sample function.
    """
    return a + b


class Sample:
    """A sample class."""

    def __init__(self, size: int) -> None:
        self.size = size


class Loud:
    """Counts calls to its __repr__."""

    reprs: list[int] = []

    def __repr__(self) -> str:
        Loud.reprs.append(1)
        return "Loud()"


_scope: dict = {}
exec("def long_doc():\n    pass", _scope)  # no source file: detail 1 shows the full docstring
long_doc = _scope["long_doc"]
long_doc.__doc__ = "Summary line.\n\n" + "\n".join(f"line {i}" for i in range(40)) + "\n\nLAST"


@pytest.fixture
def ns() -> dict:
    Loud.reprs.clear()
    return {"sample": sample, "Sample": Sample, "json": json, "loud": Loud(), "long_doc": long_doc}


@pytest.fixture
def jedi_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """jedi idle, warm and with a generous budget, so jedi-path tests never depend on speed."""
    assert jedi_runner._jedi_lock.acquire(timeout=60)
    jedi_runner._jedi_lock.release()
    jedi_runner.warm_up()
    monkeypatch.setattr(jedi_runner, "JEDI_BUDGET_S", 60.0)


def plain(reply: dict) -> str:
    assert reply["status"] == "ok"
    assert reply["found"] is True
    return reply["data"]["text/plain"]


def test_function_detail_0(ns: dict) -> None:
    reply = inspect_request("sample", 6, 0, ns)
    text = plain(reply)
    assert "Signature:   sample(a, b=2)" in text
    assert "Type:        function" in text
    assert "Add a and b." in text
    assert "test_inspection.py" in text
    assert "return a + b" not in text
    assert "\x1b" not in text
    markdown = reply["data"]["text/markdown"]
    assert "```python\nsample(a, b=2)\n```" in markdown
    assert "Add a and b." in markdown


def test_function_detail_1_has_source(ns: dict) -> None:
    reply = inspect_request("sample", 3, 1, ns)
    assert "return a + b" in plain(reply)
    assert "```python\ndef sample(a, b=2):" in reply["data"]["text/markdown"]


def test_class(ns: dict) -> None:
    text = plain(inspect_request("x = Sample", 10, 0, ns))
    assert "Sample(size: int) -> None" in text
    assert "Type:        type" in text
    assert "A sample class." in text


def test_module_and_dotted_name(ns: dict) -> None:
    text = plain(inspect_request("json", 4, 0, ns))
    assert "Type:        module" in text
    assert "json/__init__.py" in text
    assert "JSON (JavaScript Object Notation)" in text
    assert "dumps(obj" in plain(inspect_request("json.dumps", 10, 0, ns))


def test_unknown_name_is_not_found(ns: dict, jedi_ready: None) -> None:
    reply = inspect_request("no_such_name", 12, 0, ns)
    assert reply == {"status": "ok", "found": False, "data": {}, "metadata": {}}
    assert inspect_request("", 0, 0, ns)["found"] is False


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("sample(1, ", "sample(a, b=2)"),
        ("sample(len(x), ", "sample(a, b=2)"),
        ("sample(len(", "len(obj"),
    ],
)
def test_inside_call_inspects_the_callee(ns: dict, code: str, expected: str) -> None:
    assert expected in plain(inspect_request(code, len(code), 0, ns))


def test_cursor_inside_a_name(ns: dict) -> None:
    assert "sample(a, b=2)" in plain(inspect_request("y = sample(1)", 6, 0, ns))


def test_long_docstring_is_shortened_at_detail_0(ns: dict) -> None:
    short = plain(inspect_request("long_doc", 8, 0, ns))
    assert "Summary line." in short and "[...]" in short and "LAST" not in short
    full = plain(inspect_request("long_doc", 8, 1, ns))
    assert "line 39" in full and "LAST" in full


def test_inspect_request_does_not_call_user_repr(ns: dict) -> None:
    text = plain(inspect_request("loud", 4, 0, ns))
    assert "Loud object at" in text
    assert Loud.reprs == []


def test_jedi_fallback_for_name_defined_in_cell(ns: dict, jedi_ready: None) -> None:
    code = "def g(a):\n    'Doc of g.'\n    return a * 2\ng("
    text = plain(inspect_request(code, len(code), 0, ns))
    assert "g(a)" in text and "Doc of g." in text
    assert "return a * 2" in plain(inspect_request(code, len(code), 1, ns))


def test_object_help(ns: dict) -> None:
    text = object_help("sample", 0, ns)
    assert text is not None and "Add a and b." in text and "return a + b" not in text
    assert "return a + b" in object_help("sample", 1, ns)
    assert "dumps(obj" in object_help("json.dumps", 0, ns)
    assert "String form: Loud()" in object_help("loud", 0, ns)  # `obj?` runs in the cell


def test_object_help_unknown(ns: dict, jedi_ready: None) -> None:
    assert object_help("no_such_thing", 0, ns) is None


@settings(max_examples=100, deadline=None)
@given(code=st.text(max_size=40), cursor=st.integers(-2, 45), detail=st.integers(0, 1))
def test_never_raises(code: str, cursor: int, detail: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jedi_runner, "JEDI_BUDGET_S", 0.02)
        reply = inspect_request(code, cursor, detail, {"sample": sample})
    assert reply["status"] == "ok"
    assert isinstance(reply["found"], bool)


def test_bad_arguments(ns: dict) -> None:
    bad: Any = None
    assert inspect_request(bad, 3, 0, ns)["found"] is False
    assert object_help(bad, 0, ns) is None
