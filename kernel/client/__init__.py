"""Client side: the asyncio client the TUI and the tests use, and ssh tunnels.

``ipytui.kernel.client.KernelClient`` stays importable from here.
"""

from ipytui.kernel.client.kernel_client import KernelClient
from ipytui.kernel.client.results import ClientStopped, ExecuteResult, IopubSubscription

__all__ = ["ClientStopped", "ExecuteResult", "IopubSubscription", "KernelClient"]
