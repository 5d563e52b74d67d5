"""Kernel-side measurements, one fresh kernel per repetition, driven by the lean client.

``run_kernel_rep`` spawns one kernel (ipytui or ipykernel, the same command
shape and the same connection file maker), measures everything below on it,
and shuts it down. The ipykernel crash test uses a second ipykernel under
jupyter_client's KernelManager, since that is what brings an ipykernel back.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
from completion_bench import fresh_cache_env, lean_ask, run_pass
from completion_corpus import CASES, SETUP, Case, hits
from leanclient import LeanClient
from procs import (
    KERNEL_COMMANDS,
    Workdir,
    clear_stale_locks,
    kill_tree,
    read_info,
    register,
    spawn,
    tree,
    tree_memory,
    wait_quiet,
)

# (code, a match that must be among the answers) for the completion sent while a cell runs
BUSY_COMPLETION = Case("live", "os.path.jo", "join")
CRASH = "import ctypes; ctypes.string_at(0)"


@dataclass
class Sizes:
    """How much work each measurement does (scaled down by --quick)."""

    exec_n: int = 500
    pipelined_n: int = 1000
    assign_n: int = 50
    complete_n: int = 40  # completions per rep: whole passes over the corpus, at least one
    lines: int = 200_000
    busy_sleep: float = 5.0
    eco_n: int = 20  # figures shown and widget updates per rep
    shutdown_grace: float = 5.0  # seconds a kernel gets to exit after shutdown_request


Add = Callable[[str, Any], None]


class KernelRun:
    """One kernel process and a lean client on it."""

    def __init__(self, kind: str, wd: Workdir, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.wd = wd
        self.env = wd.env if env is None else env
        self.path = wd.connection_file(kind)
        self.info = read_info(self.path)
        self.client = LeanClient(self.info)
        self.proc = None

    def start(self, add: Add) -> None:
        client = self.client
        t0 = time.perf_counter()
        self.proc = spawn([*KERNEL_COMMANDS[self.kind], str(self.path)], self.env,
                          self.wd.log(self.kind))
        info_id = client.send("shell", "kernel_info_request", {})
        t_info, _, _ = client.wait_reply(info_id, 60)
        add("startup", (t_info - t0) * 1e3)
        client.wait_iopub(60)
        done, reply = client.wait_done(client.execute("import os"), 60)
        assert reply["status"] == "ok", reply
        add("startup_exec", (done - t0) * 1e3)

    def stop(self, add: Add | None = None, grace: float = 5.0) -> None:
        """A clean shutdown_request (timed), then SIGKILL for anything left."""
        client = self.client
        if self.proc is not None and self.proc.poll() is None:
            family = tree(psutil.Process(self.proc.pid))
            t0 = time.perf_counter()
            client.send("control", "shutdown_request", {"restart": False})
            try:
                self.proc.wait(grace)
                if add is not None:
                    add("shutdown", (time.perf_counter() - t0) * 1e3)
            except subprocess.TimeoutExpired:
                pass
            kill_tree(self.proc.pid)
            for proc in family:  # whatever outlived its parent
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            clear_stale_locks(self.wd)  # a killed ipytui kernel must not offer a recovery later
        client.close()

    # -- measurements ----------------------------------------------------------------
    def memory(self, add: Add, when: str) -> None:
        wait_quiet(self.proc.pid, timeout=3.0)
        mem = tree_memory(self.proc.pid)
        for key in ("pss", "rss", "uss"):
            add(f"mem_{when}_{key}", mem[key])
        add(f"mem_{when}_procs", mem["processes"])

    def corpus_first(self, add: Add) -> None:
        """The completion corpus right after start (cold caches): what the first Tabs get."""
        assert self.client.run(SETUP, 60)["status"] == "ok"
        run_pass(lean_ask(self.client), add, "first")

    def corpus_rerun(self, add: Add) -> None:
        """A second kernel on the cache the first one filled: the first Tabs of a usual start."""
        rerun = KernelRun(self.kind, self.wd, env=self.env)
        try:
            rerun.start(lambda name, value: None)
            assert rerun.client.run(SETUP, 60)["status"] == "ok"
            run_pass(lean_ask(rerun.client), add, "rerun")
        finally:
            rerun.stop(grace=2.0)

    def corpus_steady(self, add: Add, passes: int) -> None:
        for _ in range(passes):
            run_pass(lean_ask(self.client), add, "steady")

    def complete_busy(self, add: Add, sleep: float) -> None:
        """A completion sent while ``time.sleep`` runs: answered before the cell ends?"""
        client = self.client
        exec_id = client.execute(f"import time; time.sleep({sleep})")
        client.wait_for(lambda: exec_id in client.busy, 30, "the cell to start")
        time.sleep(0.1)
        t0 = time.perf_counter()
        comp_id = client.complete(BUSY_COMPLETION.code)
        t1, _, reply = client.wait_reply(comp_id, sleep + 30)
        done, _ = client.wait_done(exec_id, sleep + 30)
        add("complete_busy", (t1 - t0) * 1e3)
        add("complete_busy_before_cell_end", float(t1 < done))
        add("complete_busy_hits", float(hits(BUSY_COMPLETION, reply)))

    def execute_pass(self, add: Add, n: int, pipelined: int) -> None:
        client = self.client
        for _ in range(n):
            t0 = time.perf_counter()
            done, _ = client.wait_done(client.execute("pass"))
            add("exec_pass", (done - t0) * 1e3)
        t0 = time.perf_counter()
        ids = [client.execute("pass") for _ in range(pipelined)]
        client.wait_for(lambda: all(i in client.idle and i in client.replies for i in ids), 120,
                        "pipelined executes")
        last = max(max(client.idle.pop(i), client.replies.pop(i)[0]) for i in ids)
        add("exec_rps", pipelined / (last - t0))

    def execute_assign(self, add: Add, n: int) -> None:
        """``x = i``: a cell that changes state (ipytui forks a snapshot after it).

        Back to back, each cell also waits for the snapshot of the one before;
        spaced 50 ms apart (a fast typist), it does not.
        """
        for i in range(n):
            t0 = time.perf_counter()
            done, _ = self.client.wait_done(self.client.execute(f"x = {i}"))
            add("exec_assign", (done - t0) * 1e3)
        for i in range(n):
            time.sleep(0.05)
            t0 = time.perf_counter()
            done, _ = self.client.wait_done(self.client.execute(f"x = {i}"))
            add("exec_assign_spaced", (done - t0) * 1e3)

    def stdout(self, add: Add, lines: int) -> None:
        client = self.client
        t0 = time.perf_counter()
        msg_id = client.execute(f"for i in range({lines}): print(i)")
        client.streams[msg_id] = []
        done, reply = client.wait_done(msg_id, 300)
        text = "".join(client.streams.pop(msg_id))
        expected = "".join(f"{i}\n" for i in range(lines))
        if reply.get("status") != "ok" or text != expected:
            raise AssertionError(f"{self.kind}: stdout mismatch ({len(text)} of {len(expected)} chars)")
        add("stdout", (done - t0) * 1e3)

    def crash_ipytui(self, add: Add) -> None:
        """Segfault, then the error reply, then a follow-up showing the state survived."""
        client = self.client
        client.run("survivor = 42")
        t0 = time.perf_counter()
        crash_id = client.execute(CRASH)
        t_err, reply = client.wait_done(crash_id, 30)
        add("crash_error_reply", (t_err - t0) * 1e3)
        follow = client.execute("print(survivor)")
        client.streams[follow] = []
        done, after = client.wait_done(follow, 30)
        text = "".join(client.streams.pop(follow))
        add("crash_restored", (done - t0) * 1e3)
        kept = after.get("status") == "ok" and text == "42\n"
        add("crash_state_kept", float(kept))
        if not kept:
            print(f"  ipytui: state not kept after the crash: {after} {text!r} {reply}", file=sys.stderr)
        add("crash_reply_status_error", float(reply.get("status") == "error"))


def crash_ipykernel(wd: Workdir, add: Add) -> None:
    """ipykernel dies; jupyter_client's KernelManager restarts it as soon as death is seen.

    Death is polled every 5 ms (the IOLoopKernelRestarter a Jupyter server uses
    polls every 3 s), so this is ipykernel's best case. No reply ever comes for
    the crashing cell, and the state is gone: the follow-up gets a NameError.
    """
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=wd.env, stdout=wd.log("ipykernel-km"), stderr=wd.log("ipykernel-km"))
    register(km.provisioner.process.pid)
    info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in km.get_connection_info().items()}
    client = LeanClient(info)
    try:
        client.wait_reply(client.send("shell", "kernel_info_request", {}), 60)
        client.wait_iopub(60)
        client.run("survivor = 42")
        t0 = time.perf_counter()
        client.execute(CRASH)
        deadline = t0 + 30
        while km.is_alive() and time.perf_counter() < deadline:
            time.sleep(0.005)
        km.restart_kernel(now=True)
        register(km.provisioner.process.pid)
        client.wait_iopub(60)
        follow = client.execute("print(survivor)")
        done, after = client.wait_done(follow, 30)
        add("crash_restored", (done - t0) * 1e3)
        add("crash_state_kept", float(after.get("status") == "ok"))
    finally:
        client.close()
        try:
            km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            if km.provisioner and km.provisioner.process:
                kill_tree(km.provisioner.process.pid)


def run_kernel_rep(kind: str, wd: Workdir, sizes: Sizes, only: set[str], add: Add) -> None:
    """Every kernel-side measurement on one fresh kernel of `kind`."""
    env = fresh_cache_env(wd.env, wd.root, kind) if "complete" in only else None
    run = KernelRun(kind, wd, env=env)
    try:
        run.start(add)
        run.memory(add, "start")
        if "complete" in only:
            run.corpus_first(add)
        if "execute" in only:
            run.execute_pass(add, sizes.exec_n, sizes.pipelined_n)
            run.execute_assign(add, sizes.assign_n)
        if "complete" in only:
            run.corpus_steady(add, max(1, sizes.complete_n // len(CASES)))
            run.complete_busy(add, sizes.busy_sleep)
        if "stdout" in only:
            run.stdout(add, sizes.lines)
        if "ecosystem" in only:
            from ecosystem_bench import measure

            measure(run.client, add, sizes.eco_n)
        run.memory(add, "after")
        if "crash" in only:
            if kind == "ipytui":
                run.crash_ipytui(add)
            else:
                crash_ipykernel(wd, add)
    finally:
        run.stop(add, sizes.shutdown_grace)
    if "complete" in only:
        run.corpus_rerun(add)
