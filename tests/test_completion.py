"""Unit tests for kernel/completion.py: fast path, jedi path, fallbacks, never-raises."""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jedi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ipytui.kernel.worker import completion, jedi_runner
from ipytui.kernel.worker.completion import complete


def types_of(reply: dict) -> dict[str, str]:
    return {m["text"]: m["type"] for m in reply["metadata"]["_jupyter_types_experimental"]}


def signatures_of(reply: dict) -> dict[str, str]:
    return {m["text"]: m["signature"] for m in reply["metadata"]["_jupyter_types_experimental"]}


def apply(code: str, reply: dict, match: str) -> str:
    """The code after a frontend replaced code[cursor_start:cursor_end] with `match`."""
    return code[: reply["cursor_start"]] + match + code[reply["cursor_end"] :]


def at_end(code: str, ns: dict) -> dict:
    return complete(code, len(code), ns)


def wait_jedi_idle() -> None:
    """Wait until no (possibly abandoned) jedi run holds the jedi lock."""
    assert jedi_runner._jedi_lock.acquire(timeout=60)
    jedi_runner._jedi_lock.release()


@pytest.fixture
def jedi_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """jedi idle, warm and with a generous budget, so jedi-path tests never depend on speed."""
    wait_jedi_idle()
    jedi_runner.warm_up()
    monkeypatch.setattr(jedi_runner, "JEDI_BUDGET_S", 60.0)


@pytest.fixture
def jedi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace jedi with a recorder that fails: a fast-path answer must not need it."""
    calls: list[str] = []

    def fake(code: str, namespaces: list) -> Any:
        calls.append(code)
        raise RuntimeError("jedi is unavailable in this test")

    wait_jedi_idle()
    monkeypatch.setattr(jedi, "Interpreter", fake)
    return calls


class Child:
    def __init__(self) -> None:
        self.leaf = 3


class Point:
    """A point with attributes, a method and a property that must not run."""

    evaluated: list[str] = []

    def __init__(self) -> None:
        self.x = 1
        self.y = 2
        self.child = Child()

    def norm(self, scale: float = 1.0) -> float:
        return scale

    @property
    def expensive(self) -> int:
        Point.evaluated.append("expensive")
        return 1


class Dynamic:
    """Attributes only through __getattr__ (must not be called) and a custom __dir__."""

    calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        Dynamic.calls.append(name)
        raise AttributeError(name)

    def __dir__(self) -> list[str]:
        return ["column_a", "column_b"]


def my_func(a, b=2):
    """Sample."""
    return a + b


@pytest.fixture
def ns() -> dict:
    Point.evaluated.clear()
    Dynamic.calls.clear()
    return {
        "json": json,
        "os": os,
        "p": Point(),
        "Point": Point,
        "dyn": Dynamic(),
        "my_func": my_func,
        "my_var": 10,
        "_secret": 1,
        "café": 1,
        "d": {"alpha": 1, "beta": 2, 3: "x", "it's": 0, ("t", 1): 5},
        "raw": {b"bytes_key": 1},
    }


# ---------------------------------------------------------------- fast path


def test_plain_names_with_types_and_signatures(ns: dict, jedi_calls: list) -> None:
    reply = at_end("x = my_", ns)
    assert reply["status"] == "ok"
    assert reply["matches"] == ["my_func", "my_var"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (4, 7)
    assert types_of(reply) == {"my_func": "function", "my_var": "instance"}
    assert signatures_of(reply)["my_func"] == "my_func(a, b=2)"
    assert jedi_calls == []


def test_builtins_keywords_and_private_names(ns: dict, jedi_calls: list) -> None:
    assert types_of(at_end("pri", ns))["print"] == "function"
    assert types_of(at_end("whi", ns)) == {"while": "keyword"}
    assert "_secret" not in at_end("", ns)["matches"]
    assert "_secret" in at_end("_s", ns)["matches"]
    assert jedi_calls == []


def test_unicode_cursor_counts_code_points(ns: dict, jedi_calls: list) -> None:
    code = "s = '😀'; ca"
    reply = at_end(code, ns)
    assert "café" in reply["matches"]
    assert apply(code, reply, "café") == "s = '😀'; café"


def test_attributes_of_instance(ns: dict, jedi_calls: list) -> None:
    reply = at_end("p.", ns)
    assert {"x", "y", "child", "norm", "expensive"} <= set(reply["matches"])
    assert not any(m.startswith("_") for m in reply["matches"])
    kinds = types_of(reply)
    assert kinds["x"] == "instance"
    assert kinds["norm"] == "function"
    assert kinds["expensive"] == "property"
    assert signatures_of(reply)["norm"] == "norm(scale: float = 1.0) -> float"  # unquoted
    assert Point.evaluated == []  # the property never ran
    assert jedi_calls == []


def test_attribute_chain_and_class_attributes(ns: dict, jedi_calls: list) -> None:
    assert at_end("p.child.le", ns)["matches"] == ["leaf"]
    reply = at_end("Point.no", ns)
    assert signatures_of(reply)["norm"].startswith("norm(self, scale")
    assert "__init__" in at_end("Point.__in", ns)["matches"]
    assert jedi_calls == []


def test_attributes_of_module(ns: dict, jedi_calls: list) -> None:
    reply = at_end("json.du", ns)
    assert reply["matches"] == ["dump", "dumps"]
    assert types_of(reply)["dumps"] == "function"
    assert signatures_of(reply)["dumps"].startswith("dumps(obj, *, skipkeys=False")
    assert at_end("os.path.jo", ns)["matches"] == ["join"]
    assert types_of(at_end("os.pa", ns))["path"] == "module"
    assert jedi_calls == []


class Mode(enum.Enum):
    FAST = 1


class Token:
    reprs: list[int] = []

    def __repr__(self) -> str:
        Token.reprs.append(1)
        return "Token()"


TOKEN = Token()


def configure(mode=Mode.FAST, token=TOKEN, size=3):
    pass


def test_signature_defaults_do_not_call_user_repr(jedi_calls: list) -> None:
    reply = at_end("conf", {"configure": configure})
    assert signatures_of(reply)["configure"] == "configure(mode=Mode.FAST, token=<Token>, size=3)"
    assert Token.reprs == []


def test_custom_dir_is_used_but_getattr_is_not(ns: dict, jedi_calls: list) -> None:
    reply = at_end("dyn.col", ns)
    assert reply["matches"] == ["column_a", "column_b"]
    assert set(types_of(reply).values()) == {"instance"}
    assert Dynamic.calls == []


def test_params_of_live_callable(ns: dict, jedi_calls: list) -> None:
    reply = at_end("my_func(1, ", ns)
    assert reply["matches"][:2] == ["a=", "b="]
    assert types_of(reply)["b="] == "param"
    assert "my_var" in reply["matches"]
    assert at_end("my_func(1, b=my_v", ns)["matches"] == ["my_var"]
    assert jedi_calls == []


@pytest.mark.parametrize(
    ("code", "match", "result"),
    [
        ('d["al', 'alpha"]', 'd["alpha"]'),
        ("d['al", "alpha']", "d['alpha']"),
        ("d['it", "it\\'s']", "d['it\\'s']"),
        ('d["it', "it's\"]", 'd["it\'s"]'),
        ("d[", "3]", "d[3]"),
        ("d[", "'alpha']", "d['alpha']"),
        ("d[", "('t', 1)]", "d[('t', 1)]"),
        ("x = d[3", "3]", "x = d[3]"),
        ('raw[b"by', 'bytes_key"]', 'raw[b"bytes_key"]'),
    ],
)
def test_dict_keys(ns: dict, jedi_calls: list, code: str, match: str, result: str) -> None:
    reply = at_end(code, ns)
    assert match in reply["matches"]
    assert types_of(reply)[match] == "dict key"
    assert apply(code, reply, match) == result
    container = "raw" if result.startswith("raw") else "d"
    assert eval(result.split("=")[-1], {container: ns[container]}) is not None
    assert jedi_calls == []


def test_dict_key_replaces_existing_closing_quote(ns: dict, jedi_calls: list) -> None:
    code = 'd["al"]'
    reply = complete(code, 5, ns)
    assert reply["matches"] == ['alpha"]']
    assert apply(code, reply, 'alpha"]') == 'd["alpha"]'


def test_paths_in_strings(
    ns: dict, jedi_calls: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.csv").write_text("x")
    (tmp_path / "data_dir").mkdir()
    (tmp_path / "data_dir" / "inner.txt").write_text("y")
    (tmp_path / ".hidden").write_text("z")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))

    reply = at_end('open("da', ns)
    assert reply["matches"] == ["data.csv", "data_dir/"]
    assert set(types_of(reply).values()) == {"path"}
    assert apply('open("da', reply, "data_dir/") == 'open("data_dir/'
    assert at_end("open('data_dir/in", ns)["matches"] == ["inner.txt"]
    assert ".hidden" not in at_end('open("', ns)["matches"]
    assert at_end('open(".h', ns)["matches"] == [".hidden"]
    assert at_end('open("~/data_d', ns)["matches"] == ["data_dir/"]
    assert jedi_calls == []


def test_list_display_string_is_a_path_not_a_key(
    ns: dict, jedi_calls: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "report.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert at_end('files = ["rep', ns)["matches"] == ["report.txt"]


def test_nothing_in_comments(ns: dict, jedi_calls: list) -> None:
    assert at_end("x = 1  # my_", ns)["matches"] == []
    assert jedi_calls == []


# ---------------------------------------------------------------- jedi path


def test_jedi_import_completion(jedi_ready: None) -> None:
    reply = at_end("import jso", {})
    assert "json" in reply["matches"]
    assert types_of(reply)["json"] == "module"
    assert apply("import jso", reply, "json") == "import json"
    assert "path" in at_end("from os import pat", {})["matches"]


def test_jedi_keyword_argument_of_function_defined_in_cell(jedi_ready: None) -> None:
    code = "def g(alpha, beta=2):\n    pass\ng(1, be"
    reply = at_end(code, {})
    assert reply["matches"] == ["beta="]
    assert types_of(reply) == {"beta=": "param"}
    assert apply(code, reply, "beta=").endswith("g(1, beta=")


def test_jedi_attribute_of_expression_with_signature(jedi_ready: None) -> None:
    code = "'abc'.upp"
    reply = at_end(code, {})
    assert reply["matches"] == ["upper"]
    assert types_of(reply) == {"upper": "function"}
    assert signatures_of(reply)["upper"].startswith("upper(")
    assert apply(code, reply, "upper") == "'abc'.upper"


def test_fallback_when_jedi_raises(ns: dict, jedi_calls: list) -> None:
    reply = at_end("unknown_fn(1, my_v", ns)
    assert jedi_calls  # jedi was asked (the callee is not live) and failed
    assert reply["matches"] == ["my_var"]
    assert "json" in at_end("import jso", ns)["matches"]  # from sys.modules


def test_fallback_when_jedi_is_slow(ns: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(code: str, namespaces: list) -> Any:
        started.set()
        release.wait(30)
        raise RuntimeError("too late anyway")

    wait_jedi_idle()
    monkeypatch.setattr(jedi, "Interpreter", slow)
    monkeypatch.setattr(jedi_runner, "JEDI_BUDGET_S", 0.05)
    try:
        reply = at_end("unknown_fn(1, my_v", ns)
        assert started.wait(30)
        assert reply["matches"] == ["my_var"]
        # while the abandoned run is alive, a request waits only its budget for it
        assert at_end("unknown_fn(1, my_f", ns)["matches"] == ["my_func"]
    finally:
        release.set()
        wait_jedi_idle()


def test_a_child_forked_while_jedi_runs_imports_jedi_afresh() -> None:
    """What a snapshot forked past the wait does: forget jedi and every module lock."""
    code = (
        "import os, sys, threading, time\n"
        "from ipytui.kernel.worker import jedi_runner\n"
        "held = threading.Event()\n"
        "def busy():\n"
        "    with jedi_runner._jedi_lock:  # a jedi run: importing, inferring, then still busy\n"
        "        held.set()\n"
        "        import jedi\n"
        "        jedi.Interpreter('import os\\nos.pa', [{}]).complete(2, 5)\n"
        "        time.sleep(5)\n"
        "threading.Thread(target=busy, daemon=True).start()\n"
        "held.wait()\n"
        "with jedi_runner.jedi_lock_for_fork(timeout=0):\n"
        "    pid = os.fork()\n"
        "if pid == 0:\n"
        "    gone = not any(m.split('.')[0] in ('jedi', 'parso') for m in sys.modules)\n"
        "    jedi_runner.warm_up()  # a fresh lock, a fresh import: no deadlock\n"
        "    import jedi\n"
        "    os._exit(0 if gone and jedi.Interpreter('import os\\nos.pa', [{}]).complete(2, 5) else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_warm_up_does_not_raise() -> None:
    wait_jedi_idle()
    jedi_runner.warm_up()


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    ("code", "cursor", "namespace"),
    [(None, 0, {}), ("abc", "x", {}), ("abc", 99, None), ("p.", -5, {"p": 1}), ("", None, {})],
)
def test_bad_arguments_still_reply(code: Any, cursor: Any, namespace: Any) -> None:
    reply = complete(code, cursor, namespace)
    assert reply["status"] == "ok"
    assert isinstance(reply["matches"], list)


CODE_CHARS = st.sampled_from(list("abxyz_.([{}])'\"#,=: \n\\~/0123é😀") + ["d[", "p.", "import "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(CODE_CHARS, st.text(max_size=5)), max_size=25),
    cursor=st.one_of(st.none(), st.integers(-3, 130)),
)
def test_never_raises_and_cursor_range_is_valid(parts: list[str], cursor: int | None) -> None:
    code = "".join(parts)
    namespace = {"p": Point(), "d": {"a": 1, 2: 3}, "abc": 1, "json": json}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jedi_runner, "JEDI_BUDGET_S", 0.02)
        reply = complete(code, cursor, namespace)
    assert reply["status"] == "ok"
    start, end = reply["cursor_start"], reply["cursor_end"]
    assert 0 <= start <= end <= len(code)
    assert all(isinstance(m, str) for m in reply["matches"])
    meta = reply["metadata"]["_jupyter_types_experimental"]
    assert [m["text"] for m in meta] == reply["matches"]
    assert all((m["start"], m["end"]) == (start, end) for m in meta)


# ---------------------------------------------------------------- inference without jedi


@pytest.mark.parametrize(
    ("code", "want", "kind"),
    [
        ("[1, 2].app", "append", "function"),
        ('"x".up', "upper", "function"),
        ("{}.ke", "keys", "function"),
        ("(1, 2).co", "count", "function"),
        ("{1}.symmetric_d", "symmetric_difference", "function"),
        ("[x for x in y].cop", "copy", "function"),
        ("f'{a}'.spl", "split", "function"),
        ("x = 'abc'\nx.star", "startswith", "function"),
        ("def f(s: str, n: int = 1):\n    s.low", "lower", "function"),
        ("def f(d: 'dict[str, int]'):\n    d.ite", "items", "function"),
        ("dict(a=1).setdef", "setdefault", "function"),
        ("import collections\ncollections.Counter().most", "most_common", "function"),
        ("y = (1, [2].app", "append", "function"),
    ],
)
def test_receivers_that_have_not_run_are_inferred_without_jedi(
        code: str, want: str, kind: str, jedi_calls: list) -> None:
    reply = at_end(code, {})
    assert types_of(reply).get(want) == kind, reply["matches"]
    assert jedi_calls == []


def test_methods_of_inferred_classes_have_signatures_without_self(jedi_calls: list) -> None:
    sigs = signatures_of(at_end("import collections\ncollections.Counter().most", {}))
    assert sigs["most_common"] == "most_common(n=None)"
    assert signatures_of(at_end("[].ins", {}))["insert"].startswith("insert(index")


@pytest.mark.parametrize("code", ["d[1, 2].app", "foo().app", "a + b.app", "x.y.app", "[1][0].app"])
def test_receivers_whose_type_is_not_certain_go_to_jedi(code: str, jedi_calls: list) -> None:
    at_end(code, {})
    assert jedi_calls, "jedi must decide"


# ---------------------------------------------------------------- kinds (issue 21)

KINDS = [
    # (code, name, kind): modules, strings and other values, functions, classes, keywords
    ("import os\nos.pa", "path", "module"),
    ("import os\nos.pa", "pardir", "instance"),
    ("import os\nos.pa", "pathsep", "instance"),
    ("import os\nos.pa", "pathconf", "function"),
    ("import os\nos.Pa", "PathLike", "class"),
    ("import string\nstring.ascii_l", "ascii_letters", "instance"),
    ("import collections\ncollections.Ord", "OrderedDict", "class"),
    ("import json\njson.dum", "dumps", "function"),
    ("import xml.etree.ElementTree as ET\nET.fromst", "fromstring", "function"),
    ("import sys\nsys.versi", "version", "instance"),
    ("whi", "while", "keyword"),
    ("import js", "json", "module"),
]


def _jedi_own_type(code: str, name: str) -> str | None:
    """jedi's inferred type of the completed name (None where jedi infers nothing)."""
    prefix = code.rsplit(".", 1)[-1].rsplit("\n", 1)[-1].rsplit(" ", 1)[-1]
    full = code + name[len(prefix):]
    found = {d.type for d in jedi.Interpreter(full, [{}]).infer()}
    return found.pop() if len(found) == 1 else None


@pytest.mark.parametrize(("code", "name", "kind"), KINDS)
def test_completion_kinds_are_what_the_names_hold(jedi_ready: None, code: str, name: str,
                                                  kind: str) -> None:
    own = _jedi_own_type(code, name)
    assert own in (None, kind), f"the table disagrees with jedi: {own}"
    assert types_of(at_end(code, {})).get(name) == kind  # the answer a client gets
    if kind != "keyword":  # jedi's path too, for modules that are not loaded
        via_jedi = completion._jedi_complete(code, len(code), {})
        assert {m.text.rsplit(".", 1)[-1]: m.type for m in via_jedi.matches}.get(name) == kind


# ---------------------------------------------------------------- imports without jedi


@pytest.mark.parametrize(
    ("code", "want"),
    [
        ("import js", "json"),  # on sys.path, read from the directory listing
        ("import sys, o", "os"),
        ("import os.pa", "path"),  # a loaded module's submodule
        ("import xml.etree.Elem", "ElementTree"),  # a loaded package's directory
        ("from collections import Ord", "OrderedDict"),  # names of a loaded module
        ("from os import pa", "path"),
        ("from xml.etree import Elem", "ElementTree"),
    ],
)
def test_imports_are_answered_without_jedi(code: str, want: str, jedi_calls: list) -> None:
    import xml.etree  # noqa: F401 - the parent package must be loaded for its listing

    reply = at_end(code, {})
    assert want in reply["matches"]
    assert want.startswith(code[reply["cursor_start"]:])  # it replaces what was typed of it
    assert jedi_calls == []


def test_imports_of_unloaded_packages_go_to_jedi(jedi_calls: list) -> None:
    at_end("import no_such_package_here.sub", {})
    assert jedi_calls
