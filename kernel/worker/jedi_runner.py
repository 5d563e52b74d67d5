"""Running jedi beside the worker's cells: one run at a time, bounded, warmed early.

jedi is not documented as thread-safe and cannot be stopped once running, so
one lock keeps at most one jedi run alive; a request waits for it (bounded by
`JEDI_BUDGET_S`) instead of answering without jedi, since an empty answer to
the first Tab is worse than a short wait. A fork (snapshot) waits for the lock
too, so a child never inherits jedi mid-update.

`warm_up` pays jedi's first-use cost (import, the builtins and os stubs,
which take seconds with a cold cache) at worker start, in short steps taken
only while no cell runs, so it neither slows a cell down nor holds up the
snapshot fork after it for long.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ipytui.kernel.worker import jedi_cache

JEDI_BUDGET_S = 10.0
"""Seconds a request waits for warm jedi (the lock and the work) before answering without it.

jedi answers in tens of milliseconds once warm; parsing a module's stub for
the first time can take seconds on a loaded machine. The budget only guards
against a jedi run that never ends."""

COLD_BUDGET_FACTOR = 3.0
"""The budget is this many times longer while the warm-up has not finished (a cold start)."""

IDLE_POLL_S = 0.05
"""How often the warm-up looks whether the cell that holds it back has ended."""

WARM_UP_STUBS = ("builtins.pyi", "typing.pyi", "typing_extensions.pyi", "_typeshed/__init__.pyi",
                 "types.pyi", "collections/__init__.pyi", "_collections_abc.pyi",
                 "sys/__init__.pyi", "os/__init__.pyi", "posix.pyi")
"""typeshed stubs jedi reads for its first completion (builtins and os), biggest first;
each is parsed as a step of its own, so a cell never waits behind all of them."""

WARM_UP_MODULES = ("typing_extensions", "typing", "collections", "os", "_collections_abc", "types")
"""Python sources jedi reads beside those stubs."""

WARM_UP_CODE = (
    "import os\nos.pa",  # builtins and os stubs: nearly all of a cold start
    "[1].app",
    "import collections\ncollections.Ord",
    "def f(x):\n    return x\nf(",
)
"""One jedi completion per step; each holds the lock only for itself."""

T = TypeVar("T")

_jedi_lock = threading.Lock()  # held while a jedi run is alive (see run_jedi)
_warm = threading.Event()  # set once warm_up has run all its steps
_requests_waiting = 0  # requests waiting for the lock: the warm-up lets them go first
_warm_up_holds = False  # the lock's holder is a warm-up step (a fork waits less for it)


def _set_warm_up_holds(value: bool) -> None:
    global _warm_up_holds
    _warm_up_holds = value


@contextlib.contextmanager
def jedi_lock_for_fork(timeout: float = 3.0, warm_up_timeout: float = 0.05) -> Iterator[None]:
    """Hold the jedi lock across a fork(), waiting (bounded) for a jedi run to end.

    A jedi thread caught mid-run by fork() leaves the child with locks no
    thread will ever release (this one, and the import system's per-module
    locks) and with modules it was importing half done. Forking anyway while
    jedi works was measured worse: its writes to shared pages fault all the
    time, so it runs for seconds and slows the cells beside it. When jedi stays
    busy past ``timeout`` the child starts over (:func:`_forget_jedi_after_fork`).
    A warm-up step is waited for only `warm_up_timeout`: it is at most one
    file or one completion long, so the faults are bounded, and a snapshot
    must not be late for it (a restore asked right after a cell looks for it).
    """
    global _jedi_lock, _warm
    acquired = _jedi_lock.acquire(timeout=min(timeout, warm_up_timeout))
    if not acquired and not _warm_up_holds:
        acquired = _jedi_lock.acquire(timeout=max(0.0, timeout - warm_up_timeout))
    parent = os.getpid()
    try:
        yield
    finally:
        if acquired:
            _jedi_lock.release()
        elif os.getpid() != parent:
            _jedi_lock = threading.Lock()
            _warm = threading.Event()
            _forget_jedi_after_fork()


def _forget_jedi_after_fork() -> None:
    """In a child forked while jedi ran in another thread: drop what that thread held.

    Only the forking thread lives on, and it was not importing, so every module
    lock is stale; modules caught mid-import, and jedi and parso whole (their
    state may be mid-update), are imported afresh by the next completion.
    """
    from importlib import _bootstrap

    locks = getattr(_bootstrap, "_module_locks", None)
    if isinstance(locks, dict):
        locks.clear()
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if (name.split(".")[0] in ("jedi", "parso")
                or (spec is not None and getattr(spec, "_initializing", False))):
            del sys.modules[name]
    jedi_cache.forget()


def is_warm() -> bool:
    """True once the warm-up has finished (jedi answers in tens of milliseconds)."""
    return _warm.is_set()


def warm_up(idle: Callable[[], bool] = lambda: True) -> None:
    """Pay jedi's first-call cost now, off the request path, one short step at a time.

    Each step waits until `idle()` (no cell running), so the warm-up takes
    the GIL from no cell; a step already begun finishes first. A Tab pressed
    meanwhile waits for the step, then is answered by jedi.
    """
    if _warm.is_set():
        return
    steps: list[Callable[[], object]] = [_import_jedi]
    for step in steps:
        while not idle() or _requests_waiting:
            time.sleep(IDLE_POLL_S)
        # best effort: a failing step only leaves the work to the first request
        with _jedi_lock, contextlib.suppress(BaseException):
            _set_warm_up_holds(True)
            try:
                steps.extend(step() or ())
            finally:
                _set_warm_up_holds(False)
    _warm.set()


def _import_jedi() -> list[Callable[[], object]]:
    """The first step: configure and import jedi; returns the other steps."""
    jedi_cache.configure()
    import jedi

    def complete(code: str) -> Callable[[], object]:
        return lambda: jedi.Interpreter(code, [{}]).complete()

    return [*_parse_steps(jedi), *map(complete, WARM_UP_CODE)]


def _parse_steps(jedi: Any) -> list[Callable[[], object]]:
    """One step per file jedi's first completion reads: parse it into parso's caches,
    with the grammar and cache settings jedi uses, so jedi finds it parsed."""
    import importlib.util
    from pathlib import Path

    state = jedi.Interpreter("", [{}])._inference_state
    stubs = Path(jedi.__file__).parent / "third_party" / "typeshed" / "stdlib"
    files = [(state.latest_grammar, stubs / name) for name in WARM_UP_STUBS]
    for name in WARM_UP_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            files.append((state.grammar, Path(spec.origin)))

    def parse(grammar: Any, path: Path) -> Callable[[], object]:
        return lambda: grammar.parse(path=path, cache=True, diff_cache=jedi.settings.fast_parser,
                                     cache_path=jedi.settings.cache_directory)

    return [parse(grammar, path) for grammar, path in files if path.is_file()]


def run_jedi(work: Callable[[], T], budget: float | None = None) -> T | None:
    """Run `work` (which uses jedi) on a helper thread; its result, or None if late/failed.

    Waits for a jedi run already alive (the warm-up's step, an earlier request)
    within the same budget; the budget is longer while jedi is still cold. Python threads cannot be killed, so a late run is
    abandoned, not stopped: it finishes in the background (taking GIL slices
    from the running cell) and its result is dropped.
    """
    global _requests_waiting
    if budget is None:
        budget = JEDI_BUDGET_S * (1.0 if _warm.is_set() else COLD_BUDGET_FACTOR)
    deadline = time.monotonic() + budget
    _requests_waiting += 1  # only the listener thread asks jedi, so no lock is needed here
    try:
        if not _jedi_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
    finally:
        _requests_waiting -= 1
    box: list[T] = []
    done = threading.Event()

    def target() -> None:
        try:
            jedi_cache.configure()
            box.append(work())
        except BaseException:
            pass  # a jedi error only loses jedi's answer
        finally:
            _jedi_lock.release()
            done.set()

    try:
        threading.Thread(target=target, name="ipytui-jedi", daemon=True).start()
    except Exception:
        _jedi_lock.release()
        return None
    done.wait(max(0.0, deadline - time.monotonic()))
    return box[0] if box else None
