"""``python -m ipytui.kernel.worker``: the process the supervisor starts."""

from __future__ import annotations

import json
import os

from ipytui.kernel.worker import cluster_watch
from ipytui.kernel.worker.loop import Worker, die_with_parent


def main() -> None:
    config = json.loads(os.environ.pop("IPYTUI_WORKER", "{}"))
    die_with_parent()
    worker = Worker(config)
    worker.connect()
    worker.install_io()
    worker.restore_checkpoint()
    cluster_watch.install(worker)
    try:
        worker.serve()
    finally:
        worker.flush_streams()
    os._exit(0)


if __name__ == "__main__":
    main()
