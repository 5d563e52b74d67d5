"""Stale kernels at start, handled inside the UI (a mixin of IpytuiApp).

The app is already attached to the fresh kernel ``ipytui`` started; stale
kernels are examined in a thread (journal and checkpoint reads) and the
newest one worth it is offered in a dialog. Recovering starts a kernel
restored from its checkpoint and moves the app onto it, shutting down the
fresh kernel nobody has used. Kernels not offered (stopped by their Jupyter
kernel manager, nothing new since the checkpoint) are mentioned once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from ipytui.kernel.tools.recover import Wreck

    from .main_screen import MainScreen


class StaleKernels:
    """Offer, recover or discard the kernels that went down before this start."""

    main_screen: MainScreen
    offer_recovery: bool
    offered: Wreck | None
    switch_kernel: Callable[[Path], Awaitable[None]]  # IpytuiApp's: move onto another kernel

    def start_offering(self) -> None:
        if self.offer_recovery:
            self.run_worker(self._offer(), name="stale-kernels", exit_on_error=False)  # type: ignore[attr-defined]

    async def _offer(self) -> None:
        from ipytui.kernel.tools import recover

        def examine_all() -> tuple[list[tuple[Wreck, str]], int]:
            wrecks = [recover.examine(lock) for lock in recover.stale_locks()]
            shown = [(w, recover.describe(w)) for w in wrecks if recover.offerable(w)]
            return shown, len(wrecks) - len(shown)

        shown, skipped = await asyncio.to_thread(examine_all)
        if skipped:
            self.notify(f"{skipped} kernel(s) stopped by their manager, nothing lost: "  # type: ignore[attr-defined]
                        "not offered (`ipytui list`)", timeout=6)
        if not shown:
            return
        from .recover_offer import RecoverOffer

        wreck, account = shown[0]
        self.offered = wreck
        self.push_screen(RecoverOffer(wreck, account, more=len(shown) - 1),  # type: ignore[attr-defined]
                         callback=self._answered)

    def _answered(self, answer: str | None) -> None:
        wreck = self.offered
        if wreck is None or answer not in ("recover", "discard"):
            return
        work = self._recover(wreck) if answer == "recover" else self._discard(wreck)
        self.run_worker(work, name=f"stale-{answer}", exit_on_error=False)  # type: ignore[attr-defined]

    async def _recover(self, wreck: Wreck) -> None:
        from ipytui.kernel.tools.recover import recover_quietly

        kernel_id = wreck.lock.kernel_id
        self.notify(f"Recovering kernel {kernel_id}…", timeout=4)  # type: ignore[attr-defined]
        try:
            path = await recover_quietly(wreck)
        except Exception as exc:  # noqa: BLE001 - said in the UI; the fresh kernel stays
            self.notify(f"Kernel {kernel_id} could not be recovered: {exc}",  # type: ignore[attr-defined]
                        severity="error", timeout=10)
            return
        await self.switch_kernel(path)
        self.notify(f"Recovered kernel {kernel_id}: now on {path.name}", timeout=6)  # type: ignore[attr-defined]

    async def _discard(self, wreck: Wreck) -> None:
        from ipytui.kernel.tools.recover import discard

        await asyncio.to_thread(discard, wreck)
        self.notify(f"Discarded kernel {wreck.lock.kernel_id}", timeout=4)  # type: ignore[attr-defined]
