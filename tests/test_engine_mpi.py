"""ipytui engines placed by ipyparallel's MPI launcher (issue #18, part 2).

Real Open MPI (``mpiexec``), real mpi4py, a real ipyparallel controller and
Client: ``ipp.Cluster(engines="ipytui_mpi")`` starts ``mpiexec -n 2 python -m
ipytui.kernel.engine --mpi``. Each engine asks for its rank as its id, and its
worker initializes MPI at start (as ipengine's ``--mpi``), so a task sees
``MPI.COMM_WORLD`` with the engine's rank, and a segfault in one engine is
restored from a fork that already holds the MPI state.

Skipped only where Open MPI's ``mpiexec`` or mpi4py is not installed
(``.ci/run`` installs both).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import isolate_cluster
from ipytui.kernel.engine.mpi import mpi_rank

ipp = pytest.importorskip("ipyparallel")

pytestmark = pytest.mark.timeout(240)

needs_mpi = pytest.mark.skipif(
    shutil.which("mpiexec") is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs Open MPI's mpiexec (Debian: openmpi-bin libopenmpi-dev) and mpi4py (pip)",
)


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, 1),
        ({"PMIX_RANK": "3"}, 3),
        ({"PMI_RANK": "0", "PMI_SIZE": "4"}, 0),
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"}, 2),
        ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1"}, None),  # a lone process
        ({"PMI_RANK": "x"}, None),
        ({}, None),
    ],
)
def test_the_rank_comes_from_the_launchers_environment(env: dict[str, str], rank: int) -> None:
    assert mpi_rank(env) == rank


@pytest.fixture
def mpi_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Two ipytui engines under mpiexec (with the engine options the test is
    parametrized with), and a Client of their controller; the engines can import
    this module (its functions are sent by reference)."""
    from traitlets.config import Config

    config = Config()
    config.IpytuiMPIEngineSetLauncher.engine_args = list(getattr(request, "param", []))
    with pytest.MonkeyPatch.context() as mp:
        isolate_cluster(mp, tmp_path)
        if os.geteuid() == 0:  # Open MPI refuses root unless told (CI runs as root)
            mp.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
            mp.setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        cluster = ipp.Cluster(n=2, engines="ipytui_mpi", log_level=40, config=config)
        client = cluster.start_and_connect_sync(activate=False)
        try:
            client.wait_for_engines(2, timeout=180)
            yield client
        finally:
            client.close()
            cluster.stop_cluster_sync()


def rank_and_pid() -> tuple[int, int, int]:
    import os

    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), os.getpid()


def rank_sum() -> int:
    """A collective: every rank must take part, so it shows they all serve MPI."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.allreduce(MPI.COMM_WORLD.Get_rank() + 1)


def crash() -> None:
    import ctypes

    ctypes.string_at(0)


def segfault_in(rc: Any, engine: int) -> None:
    with pytest.raises(ipp.RemoteError) as info:
        rc[engine].apply_sync(crash)
    assert info.value.ename == "KernelDied"
    assert "SIGSEGV" in info.value.evalue


@needs_mpi
def test_mpi_engines_have_their_ranks_and_survive_a_segfault(mpi_cluster: Any) -> None:
    rc = mpi_cluster
    assert sorted(rc.ids) == [0, 1]
    marks = rc[:].apply_sync(lambda: __import__("os").environ.get("IPYTUI_ENGINE", ""))
    assert all("mpi-initialized" in mark for mark in marks), marks  # ipytui engines, MPI ranks

    # The first task segfaults: the restore point taken at start already holds MPI.
    segfault_in(rc, 1)
    before = dict(zip(rc.ids, rc[:].apply_sync(rank_and_pid), strict=True))
    assert {i: before[i][:2] for i in rc.ids} == {0: (0, 2), 1: (1, 2)}  # id = rank
    assert rc[:].pull(["mpi_rank", "mpi_size"], block=True) == [[0, 2], [1, 2]]
    assert rc[:].apply_sync(rank_sum) == [3, 3]

    rc[:].push({"kept": 41}, block=True)  # a restore point on each engine, after the allreduce
    segfault_in(rc, 0)
    assert sorted(rc.ids) == [0, 1]  # mpiexec did not end the job; no engine lost
    rank, size, pid = rc[0].apply_sync(rank_and_pid)
    assert (rank, size) == (0, 2) and pid != before[0][2]  # a restored worker, same rank
    assert rc[0].apply_sync(ipp.interactive(lambda: kept + 1)) == 42  # noqa: F821 - pushed
    assert rc[:].apply_sync(rank_sum) == [3, 3]  # both ranks still talk MPI
    assert rc.load_balanced_view().map_sync(lambda x: x * 2, range(20)) == list(range(0, 40, 2))


@needs_mpi
@pytest.mark.parametrize("mpi_cluster", [["--protection", "off"]], indirect=True)
def test_without_restore_points_a_crashed_rank_comes_back_without_mpi(mpi_cluster: Any) -> None:
    """A fresh worker cannot rejoin the MPI job (MPI_Init is collective): it serves,
    with an empty namespace and no MPI, instead of waiting forever in MPI_Init."""
    rc = mpi_cluster
    segfault_in(rc, 0)
    mpi_names = ipp.interactive(
        lambda: sorted(k for k in globals() if k.startswith(("mpi", "MPI")))
    )
    assert rc[:].apply_sync(mpi_names) == [[], ["MPI", "mpi_rank", "mpi_size"]]
    assert rc[1].apply_sync(rank_and_pid)[:2] == (1, 2)
