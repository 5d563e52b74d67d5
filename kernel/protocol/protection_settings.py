"""Crash-protection and memory settings: defaults, the ``[kernel]`` table of
``config.toml`` and the kernel's flags, checked in one place.

Example ``config.toml``::

    [kernel]
    protection = "auto"        # auto, cell, idle, checkpoint or off
    undo_depth = 3             # cells %undo can take back
    snapshot_budget = "25%"    # memory the kept restore points may hold
    copy_limit = "64M"         # a cell copying more for its snapshot moves auto to idle
    idle_seconds = 2.0         # idle level: snapshot after this long without a cell
    memory_limit = "80%"       # the worker and its snapshots together
    spill_threshold = "128M"   # a restore point spills mappings this big to disk; "off"

A bad value is refused with a message naming the key; the kernel then keeps
the default for it (a typo in the config never keeps a kernel from starting).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ipytui.kernel.protocol.sizes import SizeError, parse_size, physical_memory

LEVELS = ("auto", "cell", "idle", "checkpoint", "off")
MIN_MEMORY_LIMIT = 64 * 2**20


def _share(fraction: float, fallback: int) -> int:
    total = physical_memory()
    return int(total * fraction) if total else fallback


@dataclass
class ProtectionSettings:
    """What the supervisor and the worker need to know about protection."""

    protection: str = "auto"
    undo_depth: int = 3
    snapshot_budget: int = field(default_factory=lambda: _share(0.25, 2**30))
    copy_limit: int = 64 * 2**20
    idle_seconds: float = 2.0
    memory_limit: int = field(default_factory=lambda: _share(0.8, 4 * 2**30))
    spill_threshold: int = 128 * 2**20  # 0: restore points never spill (worker/spill.py)
    warnings: list[str] = field(default_factory=list)

    def as_config(self) -> dict[str, Any]:
        """The JSON-able form the worker receives."""
        data = asdict(self)
        data.pop("warnings")
        return data

    def set(self, key: str, value: Any) -> None:
        """Set one setting from TOML or a flag; raises ValueError with a clear message."""
        if key == "protection":
            if value not in LEVELS:
                raise ValueError(f"protection must be one of {', '.join(LEVELS)}, got {value!r}")
            self.protection = value
        elif key == "undo_depth":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ValueError(f"undo_depth must be a whole number from 0 to 100, got {value!r}")
            self.undo_depth = value
        elif key in ("snapshot_budget", "copy_limit", "memory_limit"):
            size = _size(value, key)
            if key == "memory_limit" and size < MIN_MEMORY_LIMIT:
                raise ValueError(f"memory_limit {value!r} is below the 64 MiB a worker needs")
            setattr(self, key, size)
        elif key == "spill_threshold":
            self.spill_threshold = 0 if value in ("off", False) else _size(value, key)
        elif key == "idle_seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"idle_seconds must be a number of seconds >= 0, got {value!r}")
            self.idle_seconds = float(value)
        else:
            raise ValueError(f"unknown kernel setting {key!r}")


def _size(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{key} must be more than zero, got {value}")
        return value
    try:
        return parse_size(value, key)
    except SizeError as exc:
        raise ValueError(str(exc)) from None


def load_settings(path: Path | None = None) -> ProtectionSettings:
    """Defaults overlaid with the ``[kernel]`` table of config.toml (warnings kept)."""
    settings = ProtectionSettings()
    if path is None:
        from ipytui.kernel.protocol.paths import config_dir

        path = config_dir() / "config.toml"
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the defaults stand
        return settings
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f).get("kernel", {})
    except FileNotFoundError:
        return settings
    except (OSError, tomllib.TOMLDecodeError) as exc:
        settings.warnings.append(f"cannot read {path}: {exc}")
        return settings
    if not isinstance(table, dict):
        settings.warnings.append("[kernel] in config.toml must be a table")
        return settings
    for key, value in table.items():
        try:
            settings.set(key, value)
        except ValueError as exc:
            settings.warnings.append(f"config.toml [kernel]: {exc}; the default is kept")
    return settings
