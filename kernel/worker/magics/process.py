"""Running shell commands for ``!cmd``, ``%%bash`` and ``%pip``: live or captured.

Live output goes through a pseudo-terminal (stdout) and a pipe (stderr), so
programs that buffer when writing to a pipe still show each line as it is
printed, and stdout and stderr stay apart. The child gets no stdin (it cannot
hang waiting for keys the kernel never forwards) and its own session, so an
interrupt can stop it and everything it started.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Sequence

# A pager would wait for keys nobody can type.
_CHILD_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "MANPAGER": "cat"}
_POLL_SECONDS = 0.1  # how often to notice a child that exited while a grandchild holds the pipes


class SList(list[str]):
    """Captured output lines (``files = !ls``); ``.s`` joins by spaces, ``.n`` by newlines."""

    @property
    def s(self) -> str:
        return " ".join(self)

    @property
    def n(self) -> str:
        return "\n".join(self)

    @property
    def l(self) -> list[str]:  # noqa: E743 - IPython's name for "as a plain list"
        return list(self)

    def grep(self, pattern: str, prune: bool = False) -> SList:
        """Lines matching a glob (``prune=True``: lines not matching it)."""
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        return SList(line for line in self if fnmatch.fnmatchcase(line, glob) != prune)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(_CHILD_ENV)
    return env


def _open_pty() -> tuple[int, int] | None:
    """A pty pair with output post-processing off (keep ``\\n``, no ``\\r\\n``)."""
    try:
        import pty
        import termios

        master, slave = pty.openpty()
    except (ImportError, OSError):
        return None
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    except (OSError, termios.error):
        pass
    return master, slave


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO from a pty master once every writer has gone
        return b""


def _emit(stream_name: str, text: str) -> None:
    if text:
        stream = getattr(sys, stream_name)
        stream.write(text)
        stream.flush()


def _pump(proc: subprocess.Popen[bytes], sources: dict[int, str]) -> None:
    """Copy each fd to its sys stream as data arrives, until EOF or the child is gone."""
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in sources}
    with selectors.DefaultSelector() as selector:
        for fd in sources:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            ready = selector.select(timeout=_POLL_SECONDS)
            if not ready and proc.poll() is not None:
                break
            for key, _ in ready:
                data = _read(key.fd)
                name, decoder = sources[key.fd], decoders[key.fd]
                if not data:
                    selector.unregister(key.fd)
                _emit(name, decoder.decode(data, final=not data))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt the child's whole process group, escalating until it is gone."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=1)
            return
        except subprocess.TimeoutExpired:
            continue


def run_streaming(args: str | Sequence[str], *, shell: bool = False) -> int:
    """Run a command, streaming its output live to sys.stdout/sys.stderr; the exit code."""
    pair = _open_pty()
    try:
        proc = subprocess.Popen(
            args, shell=shell, stdin=subprocess.DEVNULL,
            stdout=pair[1] if pair else subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env(), start_new_session=True,
        )
    except BaseException:
        if pair:
            os.close(pair[0])
        raise
    finally:
        if pair:
            os.close(pair[1])
    out_fd = pair[0] if pair else proc.stdout.fileno()  # type: ignore[union-attr]
    try:
        _pump(proc, {out_fd: "stdout", proc.stderr.fileno(): "stderr"})  # type: ignore[union-attr]
        return proc.wait()
    except BaseException:
        stop(proc)
        raise
    finally:
        if pair:
            os.close(pair[0])
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def capture(cmd: str) -> tuple[str, int]:
    """Run a shell command and return its output (stderr merged in) and exit code."""
    proc = subprocess.Popen(
        cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
    )
    try:
        out, _ = proc.communicate()
    except BaseException:
        stop(proc)
        raise
    return out.decode("utf-8", "replace"), proc.returncode
