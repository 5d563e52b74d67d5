"""Static kernel facts: kernel_info content and the kernel's implementation name."""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

IMPLEMENTATION = "ipytui"
VERSION = "0.1.0"
PROTOCOL_VERSION = "5.3"


def kernel_info_content() -> dict[str, Any]:
    """The kernel_info_reply content; the same from the supervisor and the worker."""
    py = ".".join(map(str, sys.version_info[:3]))
    return {
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": IMPLEMENTATION,
        "implementation_version": VERSION,
        "language_info": {
            "name": "python",
            "version": py,
            "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": 3},
            "pygments_lexer": "ipython3",
            "nbconvert_exporter": "python",
            "file_extension": ".py",
        },
        "banner": (
            f"ipytui {VERSION} on Python {py} ({platform.python_implementation()})\n"
            "A crash in your code never costs the session. Type obj? for help.\n"
        ),
        "help_links": [
            {"text": "Python Reference", "url": "https://docs.python.org/3/"},
            {"text": "ipytui", "url": "https://pypi.org/project/ipytui/"},
        ],
        "debugger": importlib.util.find_spec("debugpy") is not None,  # the worker's debugger
        "supported_features": [],
    }
