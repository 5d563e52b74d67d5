"""Magics, ``!shell`` and ``obj?``: the cell transform, each magic, the registry."""

from __future__ import annotations

import builtins
import io
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ipytui.kernel.supervisor.journal_writer import JournalWriter as Journal
from ipytui.kernel.worker.magics import (
    MagicShell,
    SList,
    TimeitResult,
    UsageError,
    cell_magic,
    format_time,
    line_magic,
    lookup,
    transform_cell,
    unregister,
)
from ipytui.kernel.worker.magics.history import parse_range


class FakeContext:
    """The KernelContext a worker provides, with a real journal behind history."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.user_ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins,
                                        "In": [""], "Out": {}}
        self.execution_count = 1
        self.allow_stdin = False
        self.payloads: list[dict[str, Any]] = []
        self.journal = journal

    def add_payload(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def history(self, hist_access_type: str, **kwargs: Any) -> list[Any]:
        assert self.journal is not None
        return self.journal.history_request(hist_access_type=hist_access_type, **kwargs)

    def object_help(self, expr: str, detail: int) -> str | None:
        if expr.split(".")[0] not in self.user_ns:
            return None
        return f"help for {expr} at detail {detail}"


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def shell(context: FakeContext) -> Iterator[MagicShell]:
    magic_shell = MagicShell(context)
    magic_shell.install()
    yield magic_shell
    del builtins.__ipytui__  # type: ignore[attr-defined]


def run(shell: MagicShell, code: str) -> dict[str, Any]:
    """Execute a cell the way the worker does: transform, then exec in the user namespace."""
    exec(compile(transform_cell(code), "<cell>", "exec"), shell.user_ns)
    return shell.user_ns


# -- transform --------------------------------------------------------------------

@pytest.mark.parametrize(("code", "expected"), [
    ("%time f()", "__ipytui__.line_magic('time', 'f()')"),
    ("%timeit  -n 3 f(a, 'b')", "__ipytui__.line_magic('timeit', \"-n 3 f(a, 'b')\")"),
    ("%pwd", "__ipytui__.line_magic('pwd', '')"),
    ("if x:\n    %cd /tmp\n", "if x:\n    __ipytui__.line_magic('cd', '/tmp')\n"),
    ("x = %time f()", "x = __ipytui__.line_magic('time', 'f()')"),
    ("a, b = %run s.py", "a, b = __ipytui__.line_magic('run', 's.py')"),
    ("!ls -l", "__ipytui__.system('ls -l')"),
    ("if x:\n  !echo 'it''s'", "if x:\n  __ipytui__.system(\"echo 'it''s'\")"),
    ("files = !ls", "files = __ipytui__.getoutput('ls')"),
    ("out = !!date", "out = __ipytui__.getoutput('date')"),
    ("!!date", "__ipytui__.getoutput('date')"),
    ("obj?", "__ipytui__.pinfo('obj', 0)"),
    ("obj.attr??", "__ipytui__.pinfo('obj.attr', 1)"),
    ("?obj", "__ipytui__.pinfo('obj', 0)"),
    ("?? obj.attr", "__ipytui__.pinfo('obj.attr', 1)"),
    ("d['k']?", "__ipytui__.pinfo(\"d['k']\", 0)"),
    ("%timeit?", "__ipytui__.pinfo('%timeit', 0)"),
    ("%%timeit??", "__ipytui__.pinfo('%%timeit', 1)"),
    ("%%writefile f.py\nprint(1)", "__ipytui__.cell_magic('writefile', 'f.py', 'print(1)\\n')\n"),
    ("\n%%bash -x\necho hi\n", "\n__ipytui__.cell_magic('bash', '-x', 'echo hi\\n')\n\n"),
    ("x = 1\n%who\n!true", "x = 1\n__ipytui__.line_magic('who', '')\n__ipytui__.system('true')"),
])
def test_transform_rewrites_ipython_syntax(code: str, expected: str) -> None:
    assert transform_cell(code) == expected
    compile(transform_cell(code), "<cell>", "exec")


@pytest.mark.parametrize("code", [
    "a != b",
    "x % y",
    "x = 5 % 3",
    "x %= 2",
    'f"{a!r}"',
    "print('%d items' % n)",
    "s = 'what?'",
    "# is this a question?",
    "x = (1\n% 2)",
    "y = [a,\n!b]",
    "z = 1 + \\\n% 2",
    's = """\n%notmagic\n!notshell\nobj?\n"""',
    "s = '''\n%%notcell\n'''",
    "t = 'multi \\\n!line'",
    "d = {'a': 1}\n",
    "",
    "x = 1  # %time",
    "if a!=b: pass",
])
def test_transform_leaves_python_alone(code: str) -> None:
    assert transform_cell(code) == code


@pytest.mark.parametrize("code", [
    "a = 1\n%time a\n!echo\nb = 2\n",
    "%%time\nx = 1\ny = 2\nz = 3",
    "\n\n%%bash\necho 1\necho 2\n",
    'def f():\n    """doc\n    %x\n    """\n    !ls\n    return 1\n',
])
def test_transform_keeps_one_line_per_line(code: str) -> None:
    assert len(transform_cell(code).split("\n")) == len(code.split("\n"))


def test_traceback_points_at_the_users_line(shell: MagicShell) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        run(shell, "a = 1\n%pwd\n!true\n1/0\n")
    assert traceback.extract_tb(info.value.__traceback__)[-1].lineno == 4


def test_cell_magic_body_errors_keep_cell_line_numbers(shell: MagicShell, capsys: Any) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        run(shell, "%%time\nx = 1\n1/0\n")
    assert traceback.extract_tb(info.value.__traceback__)[-1].lineno == 3


# -- registry, errors, help ---------------------------------------------------------

def test_unknown_magic_names_the_closest(shell: MagicShell) -> None:
    with pytest.raises(UsageError, match=r"^Line magic function `%tiemit` not found\. "
                                         r"Did you mean `%timeit`\?$"):
        run(shell, "%tiemit 1")
    with pytest.raises(UsageError, match=r"Cell magic function `%%bsh` not found\. "
                                         r"Did you mean `%%bash`\?"):
        run(shell, "%%bsh\nls")
    with pytest.raises(UsageError, match=r"Did you mean `%%bash`\?"):
        run(shell, "%bash")
    with pytest.raises(UsageError) as info:
        run(shell, "%qqqzzzxx")
    assert str(info.value) == "Line magic function `%qqqzzzxx` not found."


def test_bad_arguments_give_usage(shell: MagicShell) -> None:
    with pytest.raises(UsageError) as info:
        run(shell, "%timeit -x 1")
    assert str(info.value) == (
        "option -x not recognized\nUsage: %timeit [-n N] [-r R] [-p P] [-q] [-o] STATEMENT"
    )
    with pytest.raises(UsageError, match="Usage: %timeit"):
        run(shell, "%timeit -n abc 1")
    with pytest.raises(UsageError, match="Usage: %run"):
        run(shell, "%run")


def test_users_extend_the_registry(shell: MagicShell, capsys: Any) -> None:
    @line_magic
    def hello(shell: MagicShell, line: str) -> str:
        """%hello NAME -- greet someone"""
        return f"hello {line}"

    @cell_magic("shout")
    def shout_cell(shell: MagicShell, line: str, cell: str) -> None:
        """%%shout -- print the cell in capitals"""
        print(cell.upper(), end="")

    try:
        who = "world"  # noqa: F841 - expanded from the caller's namespace
        shell.user_ns["who_var"] = "there"
        run(shell, "greeting = %hello {who_var}\n")
        assert shell.user_ns["greeting"] == "hello there"
        run(shell, "%%shout\nquiet words\n")
        assert capsys.readouterr().out == "QUIET WORDS\n"
        run(shell, "%hello?")
        assert shell.context.payloads[-1]["data"]["text/plain"].startswith("Line magic %hello")
    finally:
        unregister("hello")
        unregister("shout", "cell")
    assert lookup("hello") is None


def test_magic_help_goes_to_the_pager(shell: MagicShell, context: FakeContext) -> None:
    run(shell, "%timeit?")
    page = context.payloads[-1]
    assert page["source"] == "page" and page["start"] == 0
    text = page["data"]["text/plain"]
    assert "%timeit [-n N]" in text and "%%timeit [-n N]" in text  # line and cell forms
    run(shell, "%%timeit?")
    assert "Line magic" not in context.payloads[-1]["data"]["text/plain"]
    run(shell, "%who??")
    assert "def who(" in context.payloads[-1]["data"]["text/plain"]


def test_pinfo_pages_object_help(shell: MagicShell, context: FakeContext, capsys: Any) -> None:
    run(shell, "thing = 1\nthing?\n??thing.real")
    assert [p["data"]["text/plain"] for p in context.payloads] == [
        "help for thing at detail 0",
        "help for thing.real at detail 1",
    ]
    assert context.payloads[0] == {"source": "page", "data": {"text/plain": "help for thing at detail 0"},
                                   "start": 0}
    run(shell, "missing?")
    run(shell, "%nosuchmagic?")
    assert capsys.readouterr().out == "Object `missing` not found.\nObject `%nosuchmagic` not found.\n"
    assert len(context.payloads) == 2
    run(shell, "lsmagic?")  # no such object, but a magic of that name
    assert context.payloads[-1]["data"]["text/plain"].startswith("Line magic %lsmagic")


# -- timing ------------------------------------------------------------------------

TIME_REPORT = re.compile(
    r"^CPU times: user [\d.]+ (s|ms|µs|ns), sys: [\d.]+ (s|ms|µs|ns), total: [\d.]+ (s|ms|µs|ns)\n"
    r"Wall time: [\d.]+ (s|ms|µs|ns)\n$"
)


def test_time_returns_the_value_and_reports(shell: MagicShell, capsys: Any) -> None:
    run(shell, "def f(n):\n    return n * 2\nx = %time f(21)\n")
    assert shell.user_ns["x"] == 42
    assert TIME_REPORT.match(capsys.readouterr().out)
    run(shell, "%time y = f(1)")  # a statement: runs in the namespace
    assert shell.user_ns["y"] == 2
    assert TIME_REPORT.match(capsys.readouterr().out)


def test_time_sees_function_locals(shell: MagicShell, capsys: Any) -> None:
    run(shell, "def g():\n    z = 5\n    r = %time z * 2\n    return r\nresult = g()\n")
    assert shell.user_ns["result"] == 10


def test_cell_time_returns_last_expression(shell: MagicShell, capsys: Any) -> None:
    assert shell.cell_magic("time", "", "a = 2\na * 3\n") == 6
    assert TIME_REPORT.match(capsys.readouterr().out)
    assert shell.cell_magic("time", "", "b = 1\n") is None
    with pytest.raises(UsageError, match="takes no arguments"):
        shell.cell_magic("time", "x", "1\n")


TIMEIT_REPORT = re.compile(
    r"^[\d.]+ (s|ms|µs|ns) ± [\d.]+ (s|ms|µs|ns) per loop \(mean ± std\. dev\. of 3 runs, "
    r"50 loops each; best [\d.]+ (s|ms|µs|ns)\)\n$"
)


def test_timeit_report_format(shell: MagicShell, capsys: Any) -> None:
    run(shell, "%timeit -n 50 -r 3 sum(range(100))")
    out = capsys.readouterr().out
    # On a loaded machine one run can be far slower than the others: IPython's warning
    # line may come first, and the report is the last line either way.
    lines = out.splitlines(keepends=True)
    assert len(lines) == 1 or (len(lines) == 2 and "times longer than the fastest" in lines[0]), out
    assert TIMEIT_REPORT.match(lines[-1]), out


def test_timeit_returns_result_with_o(shell: MagicShell, capsys: Any) -> None:
    run(shell, "data = list(range(50))\nr = %timeit -o -q -n 20 -r 4 sorted(data)\n")
    result = shell.user_ns["r"]
    assert isinstance(result, TimeitResult)
    assert (result.loops, result.repeat, len(result.all_runs)) == (20, 4, 4)
    assert 0 < result.best <= result.average <= result.worst
    assert capsys.readouterr().out == ""
    assert str(result).endswith(f"4 runs, 20 loops each; best {format_time(result.best)})")


def test_timeit_auto_ranges_the_loop_count(shell: MagicShell, capsys: Any) -> None:
    run(shell, "r = %timeit -o -r 1 sum(range(200))")
    result = shell.user_ns["r"]
    digits = str(result.loops)
    assert digits[0] in "125" and set(digits[1:]) <= {"0"}  # 1, 2, 5, 10, 20, 50, ...
    assert result.loops >= 100
    assert "1 run, " in capsys.readouterr().out


def test_cell_timeit_runs_setup(shell: MagicShell, capsys: Any) -> None:
    result = shell.cell_magic("timeit", "-o -n 5 -r 2 base = [3, 1, 2]", "sorted(base)\n")
    assert (result.loops, result.repeat) == (5, 2)
    assert "base" not in shell.user_ns  # setup runs in the timer's scope
    with pytest.raises(UsageError, match="cell body is empty"):
        shell.cell_magic("timeit", "", "\n")


@pytest.mark.parametrize(("seconds", "text"), [
    (1.5, "1.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 µs"), (7e-9, "7 ns"),
    (0.00099996, "1 ms"), (125, "2min 5s"), (3725, "1h 2min 5s"), (0, "0 ns"),
])
def test_format_time(seconds: float, text: str) -> None:
    assert format_time(seconds) == text


# -- namespace magics ----------------------------------------------------------------

def test_who_and_whos(shell: MagicShell, capsys: Any) -> None:
    run(shell, "import os\nn = 3\nname = 'x' * 80\nitems = [1, 2]\n_private = 1\n")
    run(shell, "%who")
    assert capsys.readouterr().out == "items\tn\tname\tos\n"
    run(shell, "%who int list")
    assert capsys.readouterr().out == "items\tn\n"
    run(shell, "%whos")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Variable", "Type", "Data/Info"]
    assert set(lines[1]) == {"-"}
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["items", "n", "name", "os"]
    assert rows["n"].split() == ["n", "int", "3"]
    assert rows["items"].split() == ["items", "list", "n=2"]
    assert "<...>" in rows["name"] and len(rows["name"]) < 80
    assert rows["os"].split()[1] == "module"


def test_who_on_empty_namespace(shell: MagicShell, capsys: Any) -> None:
    run(shell, "%who\n%whos")
    assert capsys.readouterr().out == "Interactive namespace is empty.\n" * 2


def test_reset_without_stdin_does_not_block(shell: MagicShell, capsys: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("must not prompt"))
    run(shell, "keep = 1\n%reset")
    assert "use `%reset -f`" in capsys.readouterr().out
    assert shell.user_ns["keep"] == 1


def test_reset_asks_when_stdin_is_allowed(shell: MagicShell, context: FakeContext, capsys: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    context.allow_stdin = True
    answers = iter(["n", "y"])
    monkeypatch.setattr(builtins, "input", lambda prompt: next(answers))
    run(shell, "a = 1\n%reset")
    assert "a" in shell.user_ns and "Nothing done." in capsys.readouterr().out
    run(shell, "%reset")
    assert "a" not in shell.user_ns


def test_reset_f_keeps_kernel_names(shell: MagicShell, context: FakeContext) -> None:
    context.user_ns["Out"][1] = "old"
    run(shell, "a = 1\ndef f(): pass\n_x = 2\n%reset -f\n")
    assert set(shell.user_ns) == {"__name__", "__builtins__", "In", "Out"}
    assert shell.user_ns["Out"] == {}


# -- process environment magics -------------------------------------------------------

def test_cd_and_pwd(shell: MagicShell, tmp_path: Path, capsys: Any,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub dir").mkdir()
    run(shell, "%cd sub dir\nhere = %pwd\n")
    assert shell.user_ns["here"] == str(tmp_path / "sub dir")
    run(shell, "%cd -q -\nback = %pwd")
    assert shell.user_ns["back"] == str(tmp_path)
    assert capsys.readouterr().out == f"{tmp_path / 'sub dir'}\n"
    with pytest.raises(UsageError, match="cd: No such file or directory: nowhere"):
        run(shell, "%cd nowhere")
    monkeypatch.setenv("HOME", str(tmp_path / "sub dir"))
    run(shell, "%cd -q")
    assert os.getcwd() == str(tmp_path / "sub dir")


def test_env(shell: MagicShell, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTUI_T_PLAIN", "visible")
    monkeypatch.setenv("IPYTUI_T_API_TOKEN", "s3cret")
    monkeypatch.delenv("IPYTUI_T_NEW", raising=False)
    monkeypatch.delenv("IPYTUI_T_OTHER", raising=False)
    run(shell, "everything = %env\nplain = %env IPYTUI_T_PLAIN\n")
    assert shell.user_ns["everything"]["IPYTUI_T_PLAIN"] == "visible"
    assert shell.user_ns["everything"]["IPYTUI_T_API_TOKEN"] == "<hidden>"
    assert shell.user_ns["plain"] == "visible"
    run(shell, "value = 7\n%env IPYTUI_T_NEW=a b\n%env IPYTUI_T_OTHER {value}\n")
    assert os.environ["IPYTUI_T_NEW"] == "a b" and os.environ["IPYTUI_T_OTHER"] == "7"
    assert capsys.readouterr().out == "env: IPYTUI_T_NEW=a b\nenv: IPYTUI_T_OTHER=7\n"
    with pytest.raises(UsageError, match="Environment does not have key: IPYTUI_T_NONE"):
        run(shell, "%env IPYTUI_T_NONE")


def test_pip_streams_from_this_python(shell: MagicShell, capsys: Any) -> None:
    run(shell, "%pip --version")
    assert re.match(r"^pip \S+ from .+\(python 3\.\d+\)", capsys.readouterr().out)
    assert shell.user_ns["_exit_code"] == 0


def test_lsmagic(shell: MagicShell, capsys: Any) -> None:
    run(shell, "%lsmagic")
    out = capsys.readouterr().out
    for name in ("%time", "%timeit", "%who", "%whos", "%reset", "%cd", "%pwd", "%env", "%run",
                 "%load", "%history", "%pip", "%lsmagic", "%%time", "%%timeit", "%%bash",
                 "%%sh", "%%writefile"):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", out), name


# -- files ----------------------------------------------------------------------------

def test_writefile_writes_overwrites_appends(shell: MagicShell, tmp_path: Path, capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run(shell, "%%writefile out.txt\nfirst\n")
    run(shell, "%%writefile out.txt\nsecond")
    run(shell, "%%writefile -a out.txt\nthird\n")
    assert (tmp_path / "out.txt").read_text() == "second\nthird\n"
    assert capsys.readouterr().out == "Writing out.txt\nOverwriting out.txt\nAppending to out.txt\n"
    with pytest.raises(UsageError, match="expected one file name"):
        run(shell, "%%writefile\nx\n")
    with pytest.raises(UsageError, match="No such file or directory"):
        run(shell, "%%writefile missing/dir/f.txt\nx\n")


def test_run_with_args_as_main(shell: MagicShell, tmp_path: Path, capsys: Any) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "ARGV = list(sys.argv)\n"
        "NAME = __name__\n"
        "import helper\n"  # sys.path[0] is the script's folder, as for `python script.py`
        "if __name__ == '__main__':\n"
        "    print('main ran', helper.VALUE)\n"
    )
    (tmp_path / "helper.py").write_text("VALUE = 42\n")
    argv, main = list(sys.argv), sys.modules["__main__"]
    shell.user_ns["path"] = str(script)
    try:
        run(shell, "%run {path} one 'two words'")
    finally:
        sys.modules.pop("helper", None)
    assert shell.user_ns["ARGV"] == [str(script), "one", "two words"]
    assert shell.user_ns["NAME"] == "__main__"
    assert shell.user_ns["__name__"] == "__main__"
    assert capsys.readouterr().out == "main ran 42\n"
    assert sys.argv == argv and sys.modules["__main__"] is main
    assert str(tmp_path) not in sys.path


def test_run_interactive_and_errors(shell: MagicShell, tmp_path: Path, capsys: Any) -> None:
    script = tmp_path / "uses.py"
    script.write_text("doubled = existing * 2\n")
    shell.user_ns["existing"] = 21
    run(shell, f"%run -i {script}")
    assert shell.user_ns["doubled"] == 42
    assert "__file__" not in shell.user_ns
    failing = tmp_path / "exits.py"
    failing.write_text("import sys\nsys.exit(3)\n")
    run(shell, f"%run {failing}")
    assert capsys.readouterr().err == "SystemExit: 3\n"
    with pytest.raises(UsageError, match=r"File `nope\.py` not found\."):
        run(shell, "%run nope.py")


def test_load_sets_next_input(shell: MagicShell, context: FakeContext, tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text("x = 1\nprint(x)\n")
    run(shell, f"%load {source}")
    assert context.payloads == [{"source": "set_next_input",
                                 "text": f"# %load {source}\nx = 1\nprint(x)\n", "replace": True}]
    with pytest.raises(UsageError, match="not found"):
        run(shell, "%load no_such_file.py")


# -- history -------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("4", (0, 4, 5)), ("4-6", (0, 4, 7)), ("4:6", (0, 4, 6)), ("3/1-5", (3, 1, 6)),
    ("~1/", (-1, 1, None)), ("~2/7", (-2, 7, 8)),
])
def test_parse_range(spec: str, expected: tuple[int, int, int | None]) -> None:
    assert parse_range(spec) == expected


def test_history_magic_reads_the_journal(tmp_path: Path, capsys: Any) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    earlier = journal.open_session("k")
    for count, code in enumerate(["old = 1", "old + 1"], 1):
        cell = journal.cell_started(earlier, count, code)
        journal.cell_finished(cell, "ok", output_text="2" if count == 2 else None)
    current = journal.open_session("k")
    for count, code in enumerate(["a = 1", "def f():\n    return a", "f()", "%history -n"], 1):
        cell = journal.cell_started(current, count, code)
        journal.cell_finished(cell, "ok", output_text="1" if code == "f()" else None)
    shell = MagicShell(FakeContext(journal))

    shell.line_magic("history", "")
    assert capsys.readouterr().out == "a = 1\ndef f():\n    return a\nf()\n%history -n\n"
    shell.line_magic("history", "-n 2-3")
    assert capsys.readouterr().out == "   2: def f():\n          return a\n   3: f()\n"
    shell.line_magic("history", "-o 3")
    assert capsys.readouterr().out == "f()\n1\n"
    shell.line_magic("history", "-n ~1/")
    assert capsys.readouterr().out == "   1: old = 1\n   2: old + 1\n"
    shell.line_magic("history", "-g old")
    assert capsys.readouterr().out == f"{earlier}/1: old = 1\n{earlier}/2: old + 1\n"
    shell.line_magic("history", "-l 2")
    assert capsys.readouterr().out == "f()\n%history -n\n"
    with pytest.raises(UsageError, match="bad range 'x-y'"):
        shell.line_magic("history", "x-y")


# -- shell commands --------------------------------------------------------------------

def test_bang_streams_stdout_and_stderr(shell: MagicShell, capsys: Any) -> None:
    run(shell, "!echo hello; echo oops 1>&2")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("hello\n", "oops\n")
    assert shell.user_ns["_exit_code"] == 0
    run(shell, "!exit 3")
    assert shell.user_ns["_exit_code"] == 3


def test_bang_output_is_live(shell: MagicShell, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The second line depends on the first one having reached sys.stdout already."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    held: list[int] = []

    class Releasing(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            if "first" in self.getvalue() and not held:
                held.append(os.open(fifo, os.O_RDWR))  # never blocks; keeps the data readable
                os.write(held[0], b"go\n")
            return written

    out = Releasing()
    monkeypatch.setattr(sys, "stdout", out)
    try:
        run(shell, f"!echo first; timeout 10 sh -c 'read line < {fifo}; echo second $line' "
                   "|| echo TIMEOUT")
    finally:
        for fd in held:
            os.close(fd)
    assert out.getvalue() == "first\nsecond go\n"


def test_bang_runs_in_a_terminal(shell: MagicShell, capsys: Any) -> None:
    run(shell, "!python3 -c 'import sys; print(sys.stdout.isatty())'")
    assert capsys.readouterr().out == "True\n"


def test_interrupt_stops_the_command(shell: MagicShell, monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupting(io.StringIO):
        def write(self, text: str) -> int:
            super().write(text)
            raise KeyboardInterrupt

    out = Interrupting()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(KeyboardInterrupt):
        run(shell, "!echo $$$$; exec sleep 30")  # $$ is a literal $ for the shell
    pid = int(out.getvalue().split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_capture_lines(shell: MagicShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("")
    run(shell, "files = !ls\nboth = !!echo out; echo err 1>&2; exit 4\n")
    files = shell.user_ns["files"]
    assert isinstance(files, SList) and files == ["a.txt", "b.txt"]
    assert (files.s, files.n, files.grep("a")) == ("a.txt b.txt", "a.txt\nb.txt", ["a.txt"])
    assert shell.user_ns["both"] == ["out", "err"]
    assert shell.user_ns["_exit_code"] == 4


def test_variables_expand_in_commands(shell: MagicShell, capsys: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTUI_T_SHELLVAR", "from-env")
    run(shell, "n = 4\nword = 'hi'\n!echo {n + 1} $word $$IPYTUI_T_SHELLVAR $IPYTUI_T_SHELLVAR {{x}}")
    assert capsys.readouterr().out == "5 hi from-env from-env {x}\n"
    run(shell, "!echo {undefined_name} $undefined_name '{print $1}'")
    assert capsys.readouterr().out == "{undefined_name} {print $1}\n"
    run(shell, "def g():\n    inner = 'local'\n    !echo $inner\n    got = !echo {inner}\n"
               "    return got\nresult = g()\n")
    assert capsys.readouterr().out == "local\n"
    assert shell.user_ns["result"] == ["local"]


def test_bash_and_sh_cell_magics(shell: MagicShell, capsys: Any) -> None:
    run(shell, "%%bash first second\necho \"$1-$2\"\necho to-err >&2\n")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("first-second\n", "to-err\n")
    run(shell, "%%sh --no-raise-error\necho ran\nexit 5\n")
    assert capsys.readouterr().out == "ran\n"
    assert shell.user_ns["_exit_code"] == 5
    with pytest.raises(subprocess.CalledProcessError):
        run(shell, "%%bash\nexit 2\n")
