"""Durable from the first second: a kernel killed right after a burst of cells
comes back with every variable, lambdas and closures included.

Twelve quick cells run (the last two logged, not forked); right after the last reply the supervisor and the worker
are killed with SIGKILL (their snapshot is not: it sees the supervisor gone and
leaves the last good state on disk). ``ipytui recover`` then starts a kernel
from the checkpoint without replaying anything: every name must be back, and
the one value nothing can pickle (a generator) is named with the reason.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from conftest import IPYTUI_ARGV
from test_recover import T, _attach, _new_connection_file, cli, env, recovered  # noqa: F401

pytestmark = pytest.mark.timeout(120)

CELLS = [
    "a = 1",
    "b = [a, 2]",
    "sq = lambda v: v * v",
    "def make(k):\n    def add(v):\n        return v + k\n    return add\nadd3 = make(3)",
    "class P:\n    def __init__(self, x):\n        self.x = x\np = P(5)",
    "import math\nc = math.sqrt(16)",
    "d = {'k': sq(3)}",
    "e = add3(4)",
    "gen = (i for i in range(3))",
    "f = [g(2) for g in (sq, add3)]",
    # Logged, not forked (worker/replayable.py): the orphaned point replays them
    # before it writes the checkpoint.
    "h = a + 41",
    "b.append(h)",
]
CHECK = "print(a, b, sq(4), add3(1), make(10)(1), p.x, c, d, e, f, h)"
EXPECTED = "1 [1, 2, 42] 16 4 11 5 4.0 {'k': 9} 7 [4, 5] 42\n"


async def test_every_name_survives_a_kill_right_after_the_last_reply(
        start_kernel, make_client, tmp_path, env, recovered) -> None:  # noqa: F811
    info, proc = start_kernel(IPYTUI_ARGV)
    client = await make_client(info)
    worker_pid = (await client.kernel_info(timeout=T))["ipytui"]["worker_pid"]
    for code in CELLS:
        result = await client.execute(code, timeout=T)
        assert result.status == "ok", (code, result.reply.content)
    os.kill(proc.pid, signal.SIGKILL)
    os.kill(worker_pid, signal.SIGKILL)
    proc.wait(timeout=T)
    psutil.wait_procs([psutil.Process(worker_pid)] if psutil.pid_exists(worker_pid) else [],
                      timeout=T)

    result = cli(env, "recover", "--yes", "--no-replay")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"checkpoint: after cell [{len(CELLS)}]" in result.stdout, result.stdout
    assert "went down while running" not in result.stdout, result.stdout  # all had finished
    assert "not in the checkpoint: gen (generator: not picklable" in result.stdout, result.stdout
    path = _new_connection_file(result.stdout)
    restored, _, _ = await _attach(make_client, path, recovered, tmp_path)
    check = await restored.execute(CHECK, timeout=T)
    assert check.status == "ok" and check.text == EXPECTED, (check.reply.content, result.stdout)
    assert (await restored.execute("gen", timeout=T)).error[0] == "NameError"
