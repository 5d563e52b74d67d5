"""Framing for the supervisor<->worker pipes: multipart messages on a byte stream.

The pipes are plain Unix stream sockets, not ZeroMQ: between two processes
on one machine, a message then costs one write and one read, with no I/O
threads to hand it over (about 4x less latency per hop, measured). This
module is the pure part: bytes in, messages out; ``kernel/pipe.py`` does
the I/O.

A message is a list of frames (like a ZeroMQ multipart message)::

    u32 frame count, then per frame: u32 length, the bytes   (big-endian)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_U32 = struct.Struct("!I")
MAX_FRAMES = 1 << 16  # a message with more frames is a bug on the other side


ROLES = ("up", "quick", "exec")  # the three connections a worker opens, by what they carry
READ_SIZE = 256 * 1024  # bytes per recv on either end


class FrameError(ValueError):
    """The byte stream is not a sequence of framed messages."""


def encode(frames: Sequence[bytes]) -> bytes:
    """One message as bytes, ready for a single write."""
    pack = _U32.pack
    parts = [pack(len(frames))]
    for frame in frames:
        parts.append(pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)


class Decoder:
    """Turns chunks of a byte stream into messages, however the chunks are cut."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole message yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes; return every message they complete, in order."""
        buf = self._buf
        buf += data
        messages: list[list[bytes]] = []
        pos, end = 0, len(buf)
        unpack = _U32.unpack_from
        while end - pos >= 4:
            (count,) = unpack(buf, pos)
            if count > MAX_FRAMES:
                raise FrameError(f"a message of {count} frames")
            cur, frames = pos + 4, []
            for _ in range(count):
                if end - cur < 4:
                    break
                (size,) = unpack(buf, cur)
                if end - cur - 4 < size:
                    break
                frames.append(bytes(buf[cur + 4 : cur + 4 + size]))
                cur += 4 + size
            if len(frames) < count:
                break  # the rest of this message is still on its way
            messages.append(frames)
            pos = cur
        if pos:
            del buf[:pos]
        return messages
