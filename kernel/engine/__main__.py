"""``python -m ipytui.kernel.engine``: start an ipytui engine (see ``app``)."""

import sys

from ipytui.kernel.engine.app import main

if __name__ == "__main__":
    sys.exit(main())
