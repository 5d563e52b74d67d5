"""Where ipytui keeps things: Jupyter's runtime dir, our data and config dirs.

Every directory is created 0700 because it holds keys, journals or locks.
"""

from __future__ import annotations

import os
from pathlib import Path


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def jupyter_runtime_dir() -> Path:
    """$JUPYTER_RUNTIME_DIR, else $JUPYTER_DATA_DIR/runtime, else ~/.local/share/jupyter/runtime."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return _private_dir(Path(os.environ["JUPYTER_RUNTIME_DIR"]))
    if os.environ.get("JUPYTER_DATA_DIR"):
        return _private_dir(Path(os.environ["JUPYTER_DATA_DIR"]) / "runtime")
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return _private_dir(base / "jupyter" / "runtime")


def data_dir() -> Path:
    """$IPYTUI_DATA_DIR, else $XDG_DATA_HOME/ipytui: journal, checkpoints, locks."""
    if os.environ.get("IPYTUI_DATA_DIR"):
        return _private_dir(Path(os.environ["IPYTUI_DATA_DIR"]))
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return _private_dir(base / "ipytui")


def config_dir() -> Path:
    """$IPYTUI_CONFIG_DIR, else $XDG_CONFIG_HOME/ipytui: config.toml, keys."""
    if os.environ.get("IPYTUI_CONFIG_DIR"):
        return _private_dir(Path(os.environ["IPYTUI_CONFIG_DIR"]))
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return _private_dir(base / "ipytui")


def journal_path() -> Path:
    """The one SQLite journal shared by every kernel of this user."""
    return data_dir() / "journal.sqlite3"


def locks_dir() -> Path:
    return _private_dir(data_dir() / "locks")


def checkpoints_dir() -> Path:
    return _private_dir(data_dir() / "checkpoints")


def temporary_path(path: Path, pid: int) -> Path:
    """Where process ``pid`` writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of writers of ``path`` that were killed (pid gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)
