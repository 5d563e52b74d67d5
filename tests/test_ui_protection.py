"""The status pane shows the kernel's protection level and restore point (issue 13),
with the real app (Pilot) on the real ipytui kernel."""

from __future__ import annotations

import pytest
from test_ui_support import (
    IPYTUI_KERNEL_ARGV,
    SIZE,
    KernelProcess,
    make_app,
    run_cell,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ipytui_kernel(tmp_path):
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    yield kernel
    kernel.stop()


async def test_status_pane_shows_the_level_and_the_restore_point(ipytui_kernel):
    app = make_app(ipytui_kernel, deterministic=False)  # restore points are volatile fields
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        screen = app.main_screen
        label = screen.status.query_one("#ks-protection")
        await run_cell(pilot, "a = 1")
        await wait_for(pilot, lambda: "⛨ cell" in screen.status.plain, "the protection level")
        await run_cell(pilot, "%protection off")
        await wait_for(pilot, lambda: "⛨ off" in screen.status.plain, "the level off")
        assert label.has_class("-unprotected")
        await run_cell(pilot, "%protection cell")
        await run_cell(pilot, "b = 2")
        await wait_for(pilot, lambda: "⛨ cell" in screen.status.plain
                       and "point [" in screen.status.plain, "a restore point shown")
        assert not label.has_class("-unprotected")
