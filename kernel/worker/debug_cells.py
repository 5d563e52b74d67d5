"""Where a cell's code lives while the debugger is on: a file named by its hash.

Breakpoints are set by source path, so a cell must run from a real file whose
name a front end can compute from the cell's text. Jupyter's debugger protocol
announces the scheme in ``debugInfo``: MurmurHash2 (32-bit) of the UTF-8 code
with ``HASH_SEED``, ``<tmpFilePrefix><hash><tmpFileSuffix>``; JupyterLab hashes
cells itself with it.
"""

from __future__ import annotations

import os
import tempfile

HASH_SEED = 0xC70F6907
SUFFIX = ".py"
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes, seed: int) -> int:
    """MurmurHash2, 32-bit, little-endian blocks (Austin Appleby's algorithm)."""
    length = len(data)
    h = (seed ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def cell_dir() -> str:
    """This worker's folder for cell files (private: 0700)."""
    path = os.path.join(tempfile.gettempdir(), f"ipytui_{os.getpid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def prefix() -> str:
    return cell_dir() + os.sep


def cell_path(code: str) -> str:
    """The file a cell with this text runs from while debugging."""
    return f"{prefix()}{murmur2(code.encode('utf-8'), HASH_SEED)}{SUFFIX}"


def dump(code: str) -> str:
    """Write the cell's code to its file (atomically) and return the path."""
    path = cell_path(code)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(code)
        os.replace(tmp, path)
    return path
