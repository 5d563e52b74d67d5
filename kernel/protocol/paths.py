"""Where ipytui keeps things: Jupyter's runtime dir, our data and config dirs.

Every directory is created 0700 because it holds keys, journals or locks; one
that exists already with wider modes is tightened to 0700 (when it is ours).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# A supervisor's private pipe directory in $TMPDIR names its pid, so that the
# leftover of one killed with SIGKILL can be told from a live one's and removed.
PRIVATE_DIR = re.compile(r"^ipytui-(\d+)-[^/]+$")


def private_dir_prefix() -> str:
    """The prefix for this process's private directory (``tempfile.mkdtemp``)."""
    return f"ipytui-{os.getpid()}-"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError:
        pass  # unreadable or not ours: using it will say so
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


LOG_ENV = "IPYTUI_KERNEL_LOG"  # the log file a kernel's processes append to; unset: stderr


def kernel_log_path(kernel_id: str) -> Path:
    """Where a kernel logs unless ``--debug``: never a client's terminal (jupyter
    console shows a kernel's stderr), as with ipykernel."""
    return _private_dir(data_dir() / "logs") / f"kernel-{kernel_id}.log"
