"""A private, self-healing, atomically written on-disk cache for jedi and parso.

jedi stores parsed modules as pickles through parso (`parso.cache`), by
default in ``~/.cache/jedi`` and ``~/.cache/parso``, directories every editor
and kernel of the user shares. parso writes them with a plain ``open(.., "wb")``,
so a worker that ends while jedi writes (shutdown, restart, crash, a snapshot
promoted in its place) leaves a truncated pickle behind, and parso's loader
then raises ``EOFError`` on that module for every tool, forever.

`configure()` (called before jedi's first use) changes three things, all in
this process only:
- the cache lives in ipytui's own directory (``$XDG_CACHE_HOME/ipytui``), so
  whatever ipytui does can never break another tool's cache, nor theirs ours;
- every pickle is written to a temporary file next to it and renamed into
  place, so a reader sees the old file or the whole new one, never half;
- a pickle that does not load (torn by an older version or another process,
  or unreadable) is deleted and the module parsed afresh, instead of failing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("ipytui.worker")

_TMP_SUFFIX = ".tmp"
_configured = False
_configure_lock = threading.Lock()


def cache_root() -> Path:
    """$XDG_CACHE_HOME/ipytui (default ~/.cache/ipytui): caches only ipytui uses."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "ipytui"


def configure() -> None:
    """Point jedi and parso at ipytui's cache and make its files atomic and self-healing.

    Idempotent and thread-safe; a failure leaves jedi's defaults (completion
    still works, only the cache is shared).
    """
    global _configured
    with _configure_lock:
        if _configured:
            return
        _configured = True
        try:
            import jedi
            import parso.cache as parso_cache
        except ImportError:
            return
        root = cache_root()
        jedi.settings.cache_directory = str(root / "jedi")
        parso_cache._default_cache_path = root / "parso"
        _patch(parso_cache)
        _remove_stale_temporaries(root)


def _patch(parso_cache: Any) -> None:
    """Swap parso's save/load of one pickle for the atomic and the healing one."""
    hashed_path = getattr(parso_cache, "_get_hashed_path", None)
    original_load = getattr(parso_cache, "_load_from_file_system", None)
    if hashed_path is None or original_load is None or \
            not hasattr(parso_cache, "_save_to_file_system"):
        return  # another parso: keep its own behaviour rather than guess

    def save(hashed_grammar: str, path: Any, item: Any, cache_path: Any = None) -> bool:
        try:
            write_atomically(hashed_path(hashed_grammar, path, cache_path=cache_path), item)
        except (OSError, pickle.PicklingError, RecursionError) as exc:
            # a full or read-only disk costs the cache, never the completion
            log.debug("jedi cache not written for %s: %s", path, exc)
            return False
        return True

    def load(hashed_grammar: str, path: Any, p_time: float, cache_path: Any = None) -> Any:
        try:
            return original_load(hashed_grammar, path, p_time, cache_path=cache_path)
        except Exception:  # a torn or foreign pickle: drop it, parse the module again
            with contextlib.suppress(OSError):
                os.unlink(hashed_path(hashed_grammar, path, cache_path=cache_path))
            return None

    parso_cache._save_to_file_system = save
    parso_cache._load_from_file_system = load


def write_atomically(target: str, item: Any) -> None:
    """Pickle `item` to `target` through a temporary file and a rename."""
    tmp = f"{target}.{os.getpid()}.{threading.get_ident()}{_TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            pickle.dump(item, f, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_stale_temporaries(root: Path) -> None:
    """Delete temporaries left by ipytui workers that died mid-write (their pid is gone)."""
    with contextlib.suppress(OSError):
        for tmp in root.glob(f"*/*/*{_TMP_SUFFIX}"):
            parts = tmp.name.split(".")
            if len(parts) >= 4 and parts[-3].isdigit() and not _alive(int(parts[-3])):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def forget() -> None:
    """After jedi and parso were dropped from sys.modules: configure the fresh import again."""
    global _configured
    _configured = False
