"""A promotion that reaches a snapshot just before its checkpoint write starts.

The snapshot keeps SIGUSR1 (the supervisor's "you are the worker now")
blocked while it waits and while it looks for younger snapshots; one sent
meanwhile is pending, and is delivered the moment the checkpoint write
unblocks it. It must cut the write short, never escape as an exception that
ends the process (seen as "the worker exited with code 1" on the first task
after a crash, under load).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal
    from ipytui.kernel.worker.snapshots import Snapshots

    snaps = Snapshots.__new__(Snapshots)  # only the write's signal handling is exercised
    snaps._writing = False
    snaps._promoted = False
    snaps._write_checkpoint = lambda worker, count: "written"
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    os.kill(os.getpid(), signal.SIGUSR1)  # the promotion, pending
    outcome = snaps._write_checkpoint_until_promoted(None, 1)
    print(outcome, snaps._promoted, signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, []))
""")


def test_a_pending_promotion_ends_the_write_not_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    # Cut short (False), the promotion remembered, SIGUSR1 blocked again for sigtimedwait.
    assert proc.stdout.split() == ["False", "True", "True"]
