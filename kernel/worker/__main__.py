"""``python -m ipytui.kernel.worker``: the process the supervisor starts."""

from __future__ import annotations

import json
import os

from ipytui.kernel.protocol import engine_identity
from ipytui.kernel.worker import cluster_watch
from ipytui.kernel.worker.loop import Worker, die_with_parent


def main() -> None:
    config = json.loads(os.environ.pop("IPYTUI_WORKER", "{}"))
    die_with_parent()
    worker = Worker(config)
    worker.connect()
    worker.install_io()
    identity = engine_identity.from_env()
    if identity is not None:  # started by ipytui.kernel.engine: serve ipyparallel's tasks too
        from ipytui.kernel.worker.engine_tasks import EngineTasks

        worker.tasks = EngineTasks(identity)
        worker.tasks.install(worker)
    worker.restore_checkpoint()
    cluster_watch.install(worker)
    try:
        worker.serve()
    finally:
        worker.flush_streams()
    os._exit(0)


if __name__ == "__main__":
    main()
