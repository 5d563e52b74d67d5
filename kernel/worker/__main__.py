"""``python -m ipytui.kernel.worker``: the process the supervisor starts."""

from ipytui.kernel.worker.loop import main

if __name__ == "__main__":
    main()
