"""Completion against the real kernel through jupyter_client, from a cold start.

Every kernel here starts with its own empty ``XDG_CACHE_HOME``, so jedi has
no cache: the corpus (benchmarks/completion_corpus.py) must be answered right
on the very first pass, and jedi's on-disk cache must stay loadable whenever
the kernel ends and whatever torn file it finds.
"""

from __future__ import annotations

import importlib.util
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ipytui.kernel.tools import kernelspec
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

pytestmark = pytest.mark.timeout(300)

TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "completion_corpus", ROOT / "benchmarks" / "completion_corpus.py"
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)  # type: ignore[union-attr]

Kernel = tuple[KernelManager, BlockingKernelClient]
NEEDS_JEDI = [
    "import re\n[re.compile('x')][0].fin",
    "import datetime\n[datetime.datetime.now()][0].yea",
    "import email.message\n[email.message.EmailMessage()][0].get_con",
]
"""Cases only jedi answers (the fast path leaves the items of a list to it), so jedi writes its cache."""


@pytest.fixture
def jupyter_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed ipytui kernelspec and private Jupyter/ipytui dirs; returns the tmp root."""
    kernelspec.install(prefix=str(tmp_path / "prefix"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    for var, name in (
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTUI_DATA_DIR", "ipytui"),
    ):
        monkeypatch.setenv(var, str(tmp_path / name))
    return tmp_path


@pytest.fixture
def start(jupyter_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Kernel]]:
    """Factory: a kernel whose XDG_CACHE_HOME is `cache`; every kernel is stopped at teardown."""
    started: list[Kernel] = []

    def make(cache: Path) -> Kernel:
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
        km = KernelManager(kernel_name="ipytui")
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        started.append((km, kc))
        kc.wait_for_ready(timeout=TIMEOUT)
        return km, kc

    yield make
    for km, kc in started:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def complete(kc: BlockingKernelClient, code: str) -> dict:
    return kc.complete(code, len(code), reply=True, timeout=TIMEOUT)["content"]


def shut_down(km: KernelManager, kc: BlockingKernelClient) -> None:
    """The clean way a frontend ends a kernel: shutdown_request, then wait for it to go."""
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    assert not km.is_alive()


def pickles(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.pkl"))


def unloadable(cache: Path) -> list[str]:
    """Cache pickles that do not load, with the reason."""
    bad = []
    for path in pickles(cache):
        try:
            with path.open("rb") as f:
                pickle.load(f)
        except Exception as exc:  # noqa: BLE001 - any failure is what we look for
            bad.append(f"{path.name}: {type(exc).__name__}: {exc}")
    return bad


def test_every_corpus_case_is_right_on_the_first_pass(
    start: Callable[[Path], Kernel], tmp_path: Path
) -> None:
    km, kc = start(tmp_path / "cold-cache")
    reply = kc.execute_interactive(corpus.SETUP, timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    answers = [(case, complete(kc, case.code)) for case in corpus.CASES]
    misses = [
        (case.code, case.want, reply["matches"][:8])
        for case, reply in answers
        if not corpus.hits(case, reply)
    ]
    assert not misses, f"{len(misses)} of {len(answers)} wrong on the first pass: {misses}"
    assert len(answers) >= 50


def test_shutdown_right_after_a_first_completion_leaves_the_cache_loadable(
    start: Callable[[Path], Kernel], tmp_path: Path
) -> None:
    written = 0
    for delay in (0, 0.05, 0.2, 0.5):
        cache = tmp_path / f"cache-{delay}"
        km, kc = start(cache)
        assert corpus.hits(corpus.Case("", NEEDS_JEDI[0], "findall"), complete(kc, NEEDS_JEDI[0]))
        time.sleep(delay)  # the delay under test, not a wait for a condition
        shut_down(km, kc)
        assert not unloadable(cache), f"after {delay} s: {unloadable(cache)}"
        assert not (cache / "jedi").exists() and not (cache / "parso").exists(), (
            "ipytui wrote into the cache other tools share"
        )
        written += len(pickles(cache))
    assert written, "jedi wrote no cache at all: the check above saw nothing"


def test_torn_cache_files_do_not_break_completion(
    start: Callable[[Path], Kernel], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    km, kc = start(cache)
    for code in NEEDS_JEDI:
        complete(kc, code)
    shut_down(km, kc)
    torn = pickles(cache)
    assert torn, "no cache files to tear"
    for path in torn:  # what a writer killed mid-write leaves
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    km, kc = start(cache)
    wants = ["findall", "year", "get_content"]
    for code, want in zip(NEEDS_JEDI, wants, strict=True):
        reply = complete(kc, code)
        assert corpus.hits(corpus.Case("", code, want), reply), (code, reply["matches"][:8])
    shut_down(km, kc)
    assert not unloadable(cache), "torn files were left in place"


def test_declared_answers_through_the_kernel_read_modules_without_running_them(
    start: Callable[[Path], Kernel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cases outside the corpus, on a cold kernel: a module on the path that has not been
    imported is completed from its source, and its code (which leaves a marker) never runs."""
    marker = tmp_path / "imported"
    pkg = tmp_path / "site" / "marker_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (pkg / "tools.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "def useful_function(path, *, retries=2):\n    return path\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    km, kc = start(tmp_path / "cold-cache")
    cases = {
        "import marker_pkg.tools as t\nt.use": "useful_function",
        "import marker_pkg.tools as t\nt.useful_function('p', ret": "retries",
        "import marker_pkg.too": "tools",
        "import datetime\ndatetime.date.today().isof": "isoformat",
        "import fractions\nfractions.Fraction(1, 2).limit": "limit_denominator",
    }
    for code, want in cases.items():
        reply = complete(kc, code)
        assert corpus.hits(corpus.Case("", code, want), reply), (code, reply["matches"][:8])
    assert not marker.exists(), "completion ran the package's code"
    printed: list[str] = []
    reply = kc.execute_interactive(
        "import sys; print('marker_pkg' in sys.modules)",
        timeout=TIMEOUT,
        output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
    )
    assert reply["content"]["status"] == "ok"
    assert "".join(printed).strip() == "False", printed
    shut_down(km, kc)
    assert not marker.exists()
