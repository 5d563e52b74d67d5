"""``--cluster`` values: ``new:N``, a client connection file, or a profile name.

Checked before any kernel starts, so a typo ends with a sentence and exit
code 2 rather than a kernel whose cluster never comes. No ipyparallel import:
the files are plain JSON in IPython's profile directories.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

MAX_ENGINES = 256
_CLIENT_KEYS = ("interface", "registration", "key")
_PROFILE_NAME = re.compile(r"[\w.-]+")


class ClusterSpecError(ValueError):
    """A ``--cluster`` value that names no cluster; the text says why."""


def ipython_dir() -> Path:
    """IPython's directory (``$IPYTHONDIR``, else ``~/.ipython``), as IPython finds it."""
    return Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython").expanduser()


def check_cluster_spec(text: str) -> str:
    """The value to hand the kernel: ``new:N``, or the client file's absolute path."""
    text = text.strip()
    if text.startswith("new:"):
        try:
            count = int(text[4:])
        except ValueError:
            raise ClusterSpecError(f"new:N takes a number of engines, not {text[4:]!r}") from None
        if not 1 <= count <= MAX_ENGINES:
            raise ClusterSpecError(f"new:N takes between 1 and {MAX_ENGINES} engines, not {count}")
        return f"new:{count}"
    path = Path(text).expanduser()
    if path.suffix == ".json" or os.sep in text or path.exists():
        return str(_client_file(path))
    if not _PROFILE_NAME.fullmatch(text):
        raise ClusterSpecError(f"{text!r} is neither new:N, a connection file, nor a profile name")
    profile = ipython_dir() / f"profile_{text}"
    if not profile.is_dir():
        raise ClusterSpecError(f"no IPython profile {text!r} (looked for {profile})")
    client = profile / "security" / "ipcontroller-client.json"
    if not client.exists():
        raise ClusterSpecError(
            f"no cluster is running in profile {text!r} (no {client}); start one with "
            f"`ipcluster start --profile={text}`, or use new:N"
        )
    return str(_client_file(client))


def _client_file(path: Path) -> Path:
    """``path`` if it is an ipyparallel client connection file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterSpecError(f"no connection file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterSpecError(f"cannot read {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ClusterSpecError(f"{str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, dict) or any(key not in data for key in _CLIENT_KEYS):
        hint = (
            " (that is the engines' file: use ipcontroller-client.json)"
            if "engine" in path.name
            else ""
        )
        raise ClusterSpecError(f"{str(path)!r} is no ipyparallel client connection file{hint}")
    return path.resolve()
