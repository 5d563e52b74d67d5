"""``python -m ipytui.kernel -f CONNECTION_FILE``: start a kernel (its supervisor).

The command Jupyter's kernelspec runs; the work is in ``ipytui.kernel.supervisor.main``.
"""

import sys

from ipytui.kernel.supervisor.main import main

if __name__ == "__main__":
    sys.exit(main())
