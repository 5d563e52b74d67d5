"""A waiting snapshot promoted around its checkpoint write (kernel/worker/snapshots.py).

A snapshot writes its pickle checkpoint shortly after it is born, on a thread
of its own (worker/checkpoint_writer.py) while its main thread waits for
SIGUSR1 (the supervisor's "become the worker"), so a promotion cuts the write
short. A promotion that came just
before the write began is pending when SIGUSR1 is unblocked: it must be
taken as a promotion too, never end the snapshot (under load that ended the
crash restore of a C stack overflow: a fresh worker came up, the state gone).

Each case runs in a process of its own: real signals, a real checkpoint file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent("""\
    import json, os, signal, sys
    from pathlib import Path
    from ipytui.kernel.worker.snapshots import Snapshots

    class Promoting:
        '''Pickling it delivers the promotion in the middle of the write.'''
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGUSR1)
            return (int, (1,))

    class Worker:
        namespace = {"x": 41}

    when, path = sys.argv[1], Path(sys.argv[2])
    snapshots = Snapshots({"checkpoint_path": str(path), "supervisor_pid": os.getpid()})
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # as in a waiting snapshot
    if when == "before":
        os.kill(os.getpid(), signal.SIGUSR1)  # pending when the write begins
    elif when == "during":
        Worker.namespace["late"] = Promoting()
    written = snapshots._write_checkpoint_until_promoted(Worker(), 1)
    print(json.dumps({"written": written, "promoted": snapshots._promoted,
                      "pending": sorted(int(s) for s in signal.sigpending()),
                      "files": sorted(p.name for p in path.parent.iterdir())}))
""")


def write_with_promotion(when: str, tmp_path: Path) -> dict[str, object]:
    """Run one write in a fresh process; what it saw afterwards."""
    directory = tmp_path / "ckpt"
    directory.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, when, str(directory / "checkpoint")],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr  # the snapshot lives on
    return json.loads(done.stdout)


def test_a_promotion_pending_when_the_write_begins_is_taken(tmp_path: Path) -> None:
    seen = write_with_promotion("before", tmp_path)
    assert seen == {"written": False, "promoted": True, "pending": [], "files": []}


def test_a_promotion_during_the_write_cuts_it_short(tmp_path: Path) -> None:
    seen = write_with_promotion("during", tmp_path)
    assert seen == {"written": False, "promoted": True, "pending": [], "files": []}


def test_without_a_promotion_the_checkpoint_is_written(tmp_path: Path) -> None:
    seen = write_with_promotion("never", tmp_path)
    assert seen == {"written": True, "promoted": False, "pending": [], "files": ["checkpoint"]}
