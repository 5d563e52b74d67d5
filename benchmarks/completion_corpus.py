"""Completion cases with the names a right answer must contain (shared by benchmark and tests).

`SETUP` runs once in a fresh kernel before any completion; it builds the live
namespace the "live", "string" and "signature" cases complete against. Every
other case brings its own code: nothing in it has run, so a kernel must infer.

A case is right when some match, once applied, contains the expected name as
a whole word (``path`` is found in ``os.path`` and ``path``, not in
``pathsep``); see `hits`. A fast empty answer is a miss like any other.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

SETUP = '''\
import os, json, collections
config = {"alpha": 1, "beta": 2, "gamma_key": 3}
class Greeter:
    """Says hello."""
    def __init__(self, name):
        self.name = name
    def greet(self, loud=False):
        return self.name.upper() if loud else self.name
g = Greeter("ann")
numbers = [1, 2, 3]
text = "hello"
def compute(value, *, scale=1.0, offset=0):
    return value * scale + offset
'''


class Case(NamedTuple):
    """One completion request at the end of `code`, and a name its answer must hold."""

    kind: str  # inference | live | string | import | signature | chain
    code: str
    want: str


CASES: list[Case] = [
    # inference: code that has not run, so only inference knows the types
    Case("inference", "import os\nos.pa", "path"),
    Case("inference", "[1, 2].app", "append"),
    Case("inference", '"x".up', "upper"),
    Case("inference", "{}.ke", "keys"),
    Case("inference", "(1, 2).co", "count"),
    Case("inference", "{1, 2}.symmetric_d", "symmetric_difference"),
    Case("inference", 'b"x".dec', "decode"),
    Case("inference", "x = 'abc'\nx.star", "startswith"),
    Case("inference", "items = [1, 2]\nitems.ext", "extend"),
    Case("inference", "import collections\ncollections.Ord", "OrderedDict"),
    Case("inference", "import collections\ncollections.Counter().most", "most_common"),
    Case("inference", "import pathlib\npathlib.Path('.').ex", "exists"),
    Case("inference", "import json\njson.dum", "dumps"),
    Case("inference", "def f(s: str):\n    return s.low", "lower"),
    Case("inference", "def f(items: list):\n    items.ins", "insert"),
    Case("inference", "import datetime\ndatetime.datetime.now().yea", "year"),
    Case("inference", "import re\nre.compile('x').fin", "findall"),
    Case("inference", "' '.join([]).spl", "split"),
    Case("inference", "class A:\n    def method(self):\n        pass\nA().meth", "method"),
    Case("inference", "def make():\n    return {'k': 1}\nmake().ite", "items"),
    Case("inference", "import os.path\nos.path.jo", "join"),
    Case("inference", "import string\nstring.ascii_l", "ascii_letters"),
    Case("inference", "import itertools\nitertools.chain.from_it", "from_iterable"),
    Case("inference", "import textwrap\ntextwrap.ded", "dedent"),
    Case("inference", "import xml.etree.ElementTree as ET\nET.fromst", "fromstring"),
    Case("inference", "with open('f') as fh:\n    fh.readl", "readline"),
    Case("inference", "for ch in 'abc':\n    ch.isdi", "isdigit"),
    Case("inference", "[x for x in range(3)].cop", "copy"),
    Case("inference", "dict(a=1).setdef", "setdefault"),
    Case("inference", "import email.message\nemail.message.EmailMes", "EmailMessage"),
    # live namespace: objects SETUP made
    Case("live", "config.ge", "get"),
    Case("live", "g.gre", "greet"),
    Case("live", "g.na", "name"),
    Case("live", "numbers.po", "pop"),
    Case("live", "text.capit", "capitalize"),
    Case("live", "compu", "compute"),
    Case("live", "Greet", "Greeter"),
    Case("live", "os.getc", "getcwd"),
    Case("live", "json.loa", "loads"),
    Case("live", "collections.defaultd", "defaultdict"),
    # strings: dict keys and file paths
    Case("string", 'config["al', "alpha"),
    Case("string", "config['gam", "gamma_key"),
    Case("string", 'open("/etc/pass', "passwd"),
    Case("string", 'open("/us', "usr"),
    # imports
    Case("import", "import js", "json"),
    Case("import", "import collec", "collections"),
    Case("import", "from collections import Ord", "OrderedDict"),
    Case("import", "import os.pa", "path"),
    Case("import", "from json import dum", "dumps"),
    Case("import", "import xml.etree.Elem", "ElementTree"),
    Case("import", "import concurrent.fut", "futures"),
    # signatures: keyword arguments
    Case("signature", "compute(1, sca", "scale"),
    Case("signature", "sorted([3, 1], rev", "reverse"),
    Case("signature", "g.greet(lo", "loud"),
    Case("signature", "def h(alpha, beta=2):\n    pass\nh(1, bet", "beta"),
    Case("signature", "print('x', se", "sep"),
    Case("signature", "import json\njson.dumps({}, ind", "indent"),
    # attribute chains
    Case("chain", "g.name.upp", "upper"),
    Case("chain", "os.path.basen", "basename"),
    Case("chain", "text.strip().spl", "split"),
    Case("chain", "text.upper().lo", "lower"),
]


def applied(code: str, reply: dict[str, Any], match: str) -> str:
    """The last line of `code` after a frontend put `match` in place of the reply's range."""
    start = reply.get("cursor_start", len(code))
    end = reply.get("cursor_end", len(code))
    return (code[:start] + match + code[end:]).rsplit("\n", 1)[-1]


def hits(case: Case, reply: dict[str, Any]) -> bool:
    """Does some match, applied, hold the expected name as a whole word?"""
    if reply.get("status") != "ok":
        return False
    word = re.compile(rf"(?<!\w){re.escape(case.want)}(?!\w)")
    before = len(word.findall(case.code.rsplit("\n", 1)[-1]))
    return any(len(word.findall(applied(case.code, reply, m))) > before
               for m in reply.get("matches", []))
