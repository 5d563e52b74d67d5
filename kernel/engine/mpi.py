"""The MPI rank of an engine started by ``mpiexec`` (or ``srun``), read from its environment.

The front must not initialize MPI: the process ``mpiexec`` started would then
hold the rank, and the worker, which runs the user's ``from mpi4py import MPI``,
could not initialize it again (Open MPI: "orte_ess_init failed ... Not found").
Every MPI launcher tells its processes their rank in the environment, and the
worker inherits it, so the front reads the rank there and leaves MPI to the
worker: ``MPI.COMM_WORLD.Get_rank()`` in a task is the engine's rank.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: (rank, size) variables, in order: Open MPI, PMIx (Open MPI 5), MPICH / Intel MPI
#: (Hydra's PMI), MVAPICH, Slurm's srun
RANK_VARIABLES = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMIX_RANK", "PMIX_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
)


def mpi_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's rank in a job of more than one process, else None.

    A size variable that is missing counts as "more than one" (PMIx sets none).
    """
    env = os.environ if environ is None else environ
    for rank_name, size_name in RANK_VARIABLES:
        rank = env.get(rank_name, "")
        if not rank.isdigit():
            continue
        size = env.get(size_name, "")
        if size.isdigit() and int(size) <= 1:
            return None
        return int(rank)
    return None
