"""Completion of code that has not run, from declarations (stubs, sources, the code itself).

The fast path answers these without jedi (`completion_local`, `completion_types`,
`completion_stubs`); each answer is checked against the real jedi on the same
code: it must hold every name jedi offers. None of these cases is in the
benchmark corpus. Where the declarations do not give one certain type the fast
path must leave the question to jedi instead of guessing.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import jedi
import pytest
from ipytui.kernel.worker import completion
from ipytui.kernel.worker.completion_stubs import condition, module_info

ANSWERED = [
    "import datetime\ndatetime.date.today().isof",
    "import datetime\nd = datetime.timedelta(days=1)\nd.total",
    "import fractions\nfractions.Fraction(1, 2).limit",
    "import decimal\ndecimal.Decimal('1').quant",
    "import re\nm = re.match('a', 'a')\nm.gro",
    "import re\nre.compile('x').match('x').sp",
    "import os\nos.getcwd().spl",
    "import pathlib\np = pathlib.Path('/tmp')\np.parent.na",
    "import urllib.parse\nurllib.parse.quo",
    "import http.client\nhttp.client.HTTPConn",
    "import logging\nlogging.getLogger('x').setLev",
    "import argparse\nargparse.ArgumentParser().add_arg",
    "import csv\ncsv.DictRe",
    "import sqlite3\nsqlite3.connect(':memory:').curs",
    "import uuid\nuuid.uuid4().he",
    "import time\ntime.localtime().tm_y",
    "import hashlib\nhashlib.sha256(b'').hexd",
    "import subprocess\nsubprocess.run(['ls']).return",
    "n = 10\nn.bit_l",
    "def g() -> str:\n    return ''\ng().zfi",
    "class B(dict):\n    def extra(self):\n        return 1\nB().setdef",
    "class C:\n    def __init__(self):\n        self.size = 1\nC().si",
    "class D:\n    def me(self):\n        return self\nD().me().m",
    "for i in range(3):\n    i.bit_le",
    "import xml.dom.minidom\nxml.dom.minidom.parseSt",
    "import email\nemail.message_from_str",
    "import concurrent.futures\nconcurrent.futures.ThreadPoolExecutor().sub",
    "'a,b'.split(',').cou",
    "b'ab'.hex().up",
    "import statistics\nstatistics.me",
    "from xml.etree import Elem",
    "import email.mi",
    "from email.mime.text import MIMET",
    "import datetime\ndatetime.timedelta(da",
    "def h(alpha, beta=2):\n    pass\nh(1, al",
]

LEFT_TO_JEDI = [
    "[1, 2][0].bit_le",  # items of a list: jedi's generics
    "import shutil\nshutil.which('ls').ends",  # returns a type variable
    "with open('f', 'rb') as fb:\n    fb.rea",  # open's overloads disagree (argument types unchecked)
    "def k(x):\n    if x:\n        return 1\n    return 'a'\nk(1).real",  # returns disagree
    "def deco(c):\n    return c\n@deco\nclass E:\n    pass\nE().x",  # a decorator may replace the class
]


def jedi_names(code: str) -> set[str]:
    """Public names the real jedi completes at the end of `code`, for the typed prefix."""
    line, column = code.count("\n") + 1, len(code.rsplit("\n", 1)[-1])
    prefix = code.rsplit("\n", 1)[-1][:column]
    word = prefix.split(".")[-1].split(" ")[-1].split("(")[-1].split(",")[-1].strip()
    names = {c.name_with_symbols for c in jedi.Interpreter(code, [{}]).complete(line, column)}
    return {n for n in names if n.startswith(word) and not n.startswith("_")}


@pytest.fixture
def no_jedi(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail every jedi run: the answers below must come without it."""
    calls: list[str] = []

    def fake(code: str, namespaces: list) -> Any:
        calls.append(code)
        raise RuntimeError("jedi is unavailable in this test")

    monkeypatch.setattr(jedi, "Interpreter", fake)
    return calls


@pytest.mark.parametrize("code", ANSWERED)
def test_declared_answer_holds_every_name_jedi_gives(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = jedi_names(code)
    assert want, "jedi itself has no answer: the case proves nothing"
    real = jedi.Interpreter
    calls: list[str] = []
    monkeypatch.setattr(jedi, "Interpreter", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    reply = completion.complete(code, len(code), {})
    got = {m for m in reply["matches"] if not m.startswith("_")}
    assert not calls, "answered by jedi, not by the declarations"
    assert want <= got, f"missing {sorted(want - got)}; got {sorted(got)[:10]}"


@pytest.mark.parametrize("code", LEFT_TO_JEDI)
def test_uncertain_types_are_left_to_jedi(code: str) -> None:
    assert completion._fast_complete(code, len(code), {}) is None


@pytest.fixture
def package_with_side_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package on sys.path whose import would leave a marker file; returns the marker."""
    marker = tmp_path / "imported"
    pkg = tmp_path / "site" / "sidefx_pkg"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (pkg / "inner" / "__init__.py").write_text("")
    (pkg / "tools.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import os\n"
        "LIMIT = 3\n"
        "def useful_function(path, *, retries=2):\n    return path\n"
        "class Widget:\n"
        "    def __init__(self, size, colour='red'):\n        self.size = size\n"
        "    def render(self) -> str:\n        return ''\n"
    )
    (pkg / "broken.py").write_text("def oops(:\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return marker


def test_modules_not_loaded_are_read_without_running_them(
    package_with_side_effect: Path, no_jedi: list[str]
) -> None:
    cases = {
        "import sidefx_pkg.tools as t\nt.use": "useful_function",
        "import sidefx_pkg.tools\nsidefx_pkg.tools.LI": "LIMIT",
        "import sidefx_pkg.tools as t\nt.Widget(3).si": "size",
        "import sidefx_pkg.tools as t\nt.Widget(3).render().upp": "upper",
        "import sidefx_pkg.tools as t\nt.useful_function('p', ret": "retries=",
        "import sidefx_pkg.tools as t\nt.Widget(3, col": "colour=",
        "import sidefx_pkg.too": "tools",
        "import sidefx_pkg.inn": "inner",
        "from sidefx_pkg.tools import Wid": "Widget",
    }
    for code, want in cases.items():
        reply = completion.complete(code, len(code), {})
        assert want in reply["matches"], (code, reply["matches"][:10])
    assert not package_with_side_effect.exists(), "completion ran the package's code"
    assert "sidefx_pkg" not in sys.modules
    assert not no_jedi


def test_kinds_and_signatures_come_from_the_declarations(
    package_with_side_effect: Path, no_jedi: list[str]
) -> None:
    def meta(code: str) -> dict[str, tuple[str, str]]:
        reply = completion.complete(code, len(code), {})
        return {
            m["text"]: (m["type"], m["signature"])
            for m in reply["metadata"]["_jupyter_types_experimental"]
        }

    head = "import sidefx_pkg.tools as t\n"
    assert meta(head + "t.use")["useful_function"] == (
        "function",
        "useful_function(path, *, retries=2)",
    )
    assert meta(head + "t.Wid")["Widget"] == ("class", "")
    assert meta(head + "t.LIM")["LIMIT"] == ("instance", "")
    assert meta(head + "t.o")["os"] == ("module", "")
    assert meta(head + "t.Widget(1).ren")["render"] == ("function", "render()")
    assert not package_with_side_effect.exists()
    assert not no_jedi


def test_a_module_that_does_not_parse_is_left_to_jedi(package_with_side_effect: Path) -> None:
    assert module_info("sidefx_pkg.broken") is None
    code = "import sidefx_pkg.broken as b\nb.oo"
    assert completion._fast_complete(code, len(code), {}) is None
    reply = completion.complete(code, len(code), {})  # jedi's turn; never raises
    assert reply["status"] == "ok"


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("sys.version_info >= (3, 8)", True),
        ("sys.version_info < (3,)", False),
        (f"sys.version_info >= ({sys.version_info[0]}, {sys.version_info[1] + 1})", False),
        (f"sys.platform == {sys.platform!r}", True),
        ("sys.platform != 'no-such-os' and sys.version_info >= (3, 0)", True),
        ("not sys.platform.startswith('no-such-os')", True),
        ("SOME_FLAG", None),
        ("sys.version_info >= (3, 8) or SOME_FLAG", True),
    ],
)
def test_stub_conditions_follow_this_interpreter(test: str, expected: bool | None) -> None:
    assert condition(ast.parse(test, mode="eval").body) is expected


def test_the_codes_own_binding_wins_over_a_live_name(no_jedi: list[str]) -> None:
    """``x = 'abc'`` in the code replaces a live ``x = 1`` once it runs: complete the str."""
    code = "x = 'abc'\nx.star"
    reply = completion.complete(code, len(code), {"x": 1})
    assert reply["matches"] == ["startswith"]
    code = "y = 'abc'\nx.bit"  # a live name the code does not touch stays live
    assert "bit_length" in completion.complete(code, len(code), {"x": 1})["matches"]
    assert not no_jedi


def test_an_import_of_a_loaded_module_keeps_the_live_answer(no_jedi: list[str]) -> None:
    import os

    code = "import os.path\nos.path.jo"
    assert "join" in completion.complete(code, len(code), {"os": os})["matches"]
    code = (
        "import hashlib\nhashlib.sha256(b'').hexd"  # an alias in the stub: sha256 = openssl_sha256
    )
    assert "hexdigest" in completion.complete(code, len(code), {})["matches"]
    code = (
        "import subprocess\nsubprocess.run(['ls']).return"  # set in __init__, declared in the stub
    )
    assert "returncode" in completion.complete(code, len(code), {})["matches"]
    assert not no_jedi


def test_parsed_declarations_stay_within_their_budget(
    monkeypatch: pytest.MonkeyPatch, no_jedi: list[str]
) -> None:
    """Past the budget the parsed trees are dropped, and answers are still right (parsed again)."""
    from ipytui.kernel.worker import completion_stubs

    completion_stubs.forget_parsed()
    monkeypatch.setattr(completion_stubs, "MAX_CACHED_SOURCE_BYTES", 150_000)
    for code, want in [
        ("import datetime\ndatetime.datetime.now().yea", "year"),
        ("import xml.etree.ElementTree as ET\nET.fromst", "fromstring"),
        ("import re\nre.compile('x').fin", "findall"),
        ("import datetime\ndatetime.datetime.now().yea", "year"),
    ]:
        assert want in completion.complete(code, len(code), {})["matches"], code
        assert completion_stubs._parsed_bytes <= 150_000 + completion_stubs.MAX_FILE_BYTES
    assert completion_stubs.module_info.cache_info().currsize < 10
    assert not no_jedi
