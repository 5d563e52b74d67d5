"""procs.kill_snapshot kills a restore point, never a process that took its pid."""

from __future__ import annotations

import subprocess
import sys

from ipytui.kernel.protocol import procs

NAMED = """\
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)  # PR_SET_NAME
print("named", flush=True)
time.sleep(60)
"""


def _child(name: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", NAMED, name], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "named\n"
    return child


def test_a_process_named_as_a_snapshot_is_killed() -> None:
    child = _child(procs.SNAPSHOT_NAME.decode())
    try:
        procs.kill_snapshot(child.pid)
        assert child.wait(timeout=30) == -9
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_stranger_with_a_reused_pid_is_left_alone() -> None:
    stranger, point = _child("someone-else"), _child(procs.SNAPSHOT_NAME.decode())
    try:
        procs.kill_snapshot(stranger.pid)
        procs.kill_snapshot(2**22 + 7)  # no such process: nothing happens
        procs.kill_snapshot(point.pid)  # sent after the stranger's: once it is dead, so would be
        assert point.wait(timeout=30) == -9
        assert stranger.poll() is None
    finally:
        for child in (stranger, point):
            child.kill()
            child.wait()
            child.stdout.close()


def test_signal_exact_reaches_the_process_of_its_descriptor_only() -> None:
    """The supervisor kills its worker through the worker's pidfd: once that process
    is gone, the signal goes nowhere, even by a pid someone else may have taken."""
    import os
    import signal

    child = _child("ipytui-test")
    fd = os.pidfd_open(child.pid)
    try:
        procs.signal_exact(fd, child.pid, signal.SIGTERM)
        assert child.wait(timeout=30) == -signal.SIGTERM
        other = _child("ipytui-test")  # alive; the descriptor still names the reaped one
        try:
            procs.signal_exact(fd, other.pid)  # the reaped child's fd, another live pid
            assert other.poll() is None
        finally:
            other.kill()
            other.wait(timeout=30)
    finally:
        os.close(fd)
