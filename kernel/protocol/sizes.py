"""Memory sizes as people write them (``4G``, ``512M``, ``80%``) and as we show them.

Shared by the kernel's flags, the TOML config and the kernelspec installer,
so one spelling is accepted everywhere and a bad one is refused the same way.
"""

from __future__ import annotations

import os
import re

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class SizeError(ValueError):
    """A size that cannot be read; the message says what is accepted."""


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def parse_size(text: str, what: str = "size") -> int:
    """Bytes for ``4G``, ``512M``, ``1.5GiB``, ``1048576`` or ``80%`` (of physical memory)."""
    if not isinstance(text, str):
        raise SizeError(f"{what} must be a string such as 4G, 512M or 80%, got {text!r}")
    percent = _PERCENT.match(text)
    if percent:
        share = float(percent.group(1))
        total = physical_memory()
        if not 0 < share <= 100:
            raise SizeError(f"{what} {text!r}: a share of memory must be above 0% and at most 100%")
        if not total:
            raise SizeError(f"{what} {text!r}: the physical memory size is unknown; give bytes")
        return int(total * share / 100)
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"{what} {text!r} is not a size: use e.g. 4G, 512M or 80% "
                        "(of physical memory)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise SizeError(f"{what} {text!r} must be more than zero")
    return value


def format_size(count: float) -> str:
    """``1.0 GiB``, ``512 MiB``, ``12 KiB``: binary units, short."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
