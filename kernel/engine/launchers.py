"""ipyparallel launchers that start ipytui engines in ipengine's place.

Select them through ipyparallel's own configuration::

    ipp.Cluster(n=4, engine_launcher_class="ipytui")        # local processes
    ipp.Cluster(n=4, engine_launcher_class="ipytui_mpi")    # mpiexec

(the names are registered under the ``ipyparallel.engine_launchers`` entry
point; the dotted class paths below work as well), or keep any of
ipyparallel's launchers (SSH, Slurm, PBS, ...) and set its ``engine_cmd``
to ``ENGINE_CMD`` (``[python, "-m", "ipytui.kernel.engine"]``) in the config.
"""

from __future__ import annotations

import sys

from ipyparallel.cluster.launcher import LocalEngineSetLauncher, MPIEngineSetLauncher
from traitlets import List, default

ENGINE_CMD = [sys.executable, "-m", "ipytui.kernel.engine"]


class IpytuiEngineSetLauncher(LocalEngineSetLauncher):
    """Local ipytui engines (``ipytui.kernel.engine``) instead of ipengines."""

    engine_cmd = List(config=True, help="command to launch an ipytui engine")

    @default("engine_cmd")
    def _engine_cmd_default(self) -> list[str]:
        return list(ENGINE_CMD)


class IpytuiMPIEngineSetLauncher(MPIEngineSetLauncher):
    """ipytui engines under mpiexec; each asks for its MPI rank as engine id."""

    engine_cmd = List(config=True, help="command to launch an ipytui engine")

    @default("engine_cmd")
    def _engine_cmd_default(self) -> list[str]:
        return list(ENGINE_CMD)
