"""User preferences from ``config.toml`` in the ipytui config directory.

Example::

    display_name = "alice"
    theme = "dark"            # dark, light, high-contrast or any Textual theme
    scrollback_lines = 20000  # lines of output kept before the oldest are dropped
    share_drafts = true       # share the draft with peers as you type
    images = "auto"           # inline images: auto, kitty, sixel, halfblock or off
    cull_idle_after = 14400   # seconds a kernel ipytui starts may run with no client (0: for ever);
                              # then it writes a checkpoint and stops (`ipytui recover` brings it back)

    [kernel]                  # read by the kernel (crash protection, undo, memory
    protection = "auto"       # limit): see ipytui.kernel.protocol.protection_settings

A missing file means defaults; a bad value is ignored with a warning so a
typo never keeps the UI from starting.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

MIN_SCROLLBACK = 100
IMAGE_MODES = ("auto", "kitty", "sixel", "halfblock", "off")
KERNEL_TABLES = ("kernel",)


def default_display_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER", "user")


@dataclass
class Config:
    display_name: str = field(default_factory=default_display_name)
    theme: str = "dark"
    scrollback_lines: int = 10_000
    share_drafts: bool = True
    images: str = "auto"
    cull_idle_after: int = 4 * 3600
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)


_TYPES: dict[str, type] = {
    "display_name": str,
    "theme": str,
    "scrollback_lines": int,
    "share_drafts": bool,
    "images": str,
    "cull_idle_after": int,
}


def config_path() -> Path:
    from ipytui.kernel.protocol.paths import config_dir

    return config_dir() / "config.toml"


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    """Build a Config from parsed TOML, keeping defaults for bad or unknown keys."""
    config = Config(path=path)
    for key, value in data.items():
        if key in KERNEL_TABLES:
            continue  # the kernel reads and checks its own table
        expected = _TYPES.get(key)
        if expected is None:
            config.warnings.append(f"unknown setting {key!r} ignored")
            continue
        # bool is an int in Python; refuse it where a number is wanted.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            config.warnings.append(f"{key} must be {expected.__name__}, got {value!r}")
            continue
        setattr(config, key, value)
    if config.scrollback_lines < MIN_SCROLLBACK:
        config.warnings.append(f"scrollback_lines raised to the minimum {MIN_SCROLLBACK}")
        config.scrollback_lines = MIN_SCROLLBACK
    if config.images not in IMAGE_MODES:
        config.warnings.append(
            f"images must be one of {', '.join(IMAGE_MODES)}, got {config.images!r}; using auto"
        )
        config.images = "auto"
    if config.cull_idle_after < 0:
        config.warnings.append("cull_idle_after must be 0 (never) or more seconds; using 0")
        config.cull_idle_after = 0
    if not config.display_name.strip():
        config.display_name = default_display_name()
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config file; defaults when it is missing or unreadable."""
    path = Path(path) if path is not None else config_path()
    if not path.exists():
        return Config(path=path)
    if tomllib is None:
        return Config(path=path, warnings=["config.toml needs Python 3.11+ (tomllib); ignored"])
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return Config(path=path, warnings=[f"cannot read {path}: {exc}"])
    return parse_config(data, path)
