"""End to end, issue 22: two installed ``ipytui --existing`` in real terminals (tmux)
on one kernel; one undoes the other's cell with F10, the other sees who undid which
cell and then runs on the restored state. Read off the screens, awaited by polling."""

from __future__ import annotations

import shutil

import pytest
from conftest import wait_until
from test_ui_support import IPYTUI_KERNEL_ARGV, KernelProcess
from test_ui_tmux import Terminal, _kill_kernels_under, _named_env, ipytui_command

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
    pytest.mark.timeout(180),
]


def test_f10_in_one_terminal_undoes_for_the_other(tmp_path):
    kernel = KernelProcess(tmp_path, argv=IPYTUI_KERNEL_ARGV).start()
    command = [*ipytui_command(), "--existing", str(kernel.path)]
    alice = Terminal(command, _named_env(tmp_path, "alice"))
    bob = Terminal(command, _named_env(tmp_path, "bob"))
    try:
        for term in (alice, bob):
            term.wait_for("idle", "the idle kernel")
        alice.type("val = 'kept'")
        alice.keys("Enter")
        alice.type("val = 'undone'; print('now', val)")
        alice.keys("Enter")
        bob.wait_for("now undone", "alice's second cell, finished, in bob's stream")

        bob.keys("C-t")  # the timeline screen, in a real terminal
        screen = bob.wait_for("%undo 1  after In [1]  by alice", "the restore points")
        assert "current  after In [2]  by alice" in screen and "changed: val" in screen, screen
        bob.keys("Escape")
        wait_until(lambda: "Restore points (undo" not in bob.screen(), 40, "the timeline closed")
        bob.keys("F10")  # alice's cell: bob is asked first, naming it and her
        screen = bob.wait_for("Undo In [2] run by alice", "the question")  # her peer label
        assert "val = 'undone'" in screen and "y undoes it for everyone" in screen, screen
        bob.type("y")

        entry = "Undo by bob: the namespace is back to the state after cell [1]"
        alice.wait_for_all((entry, "the changes of cells [2] are undone"), "bob's undo in alice's stream")
        alice.type("print('val is', val)")
        alice.keys("Enter")
        alice.wait_for("val is kept", "the restored value in alice's next cell")
        bob.wait_for("val is kept", "alice's cell on the restored state, in bob's stream")
    finally:
        for term in (alice, bob):
            term.close()
        kernel.stop()
        _kill_kernels_under(tmp_path)
