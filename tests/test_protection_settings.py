"""Sizes, the [kernel] table of config.toml and the restore-point chain's bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest
from ipytui.app.config import parse_config
from ipytui.kernel.protocol.protection_settings import ProtectionSettings, load_settings
from ipytui.kernel.protocol.sizes import SizeError, format_size, parse_size, physical_memory
from ipytui.kernel.supervisor.restore_points import RestoreChain, RestorePoint


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("2048", 2048),
    ("64mb", 64 * 2**20), (" 1 t ", 2**40),
])
def test_sizes_people_write(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_a_share_of_physical_memory() -> None:
    assert parse_size("50%") == physical_memory() // 2


@pytest.mark.parametrize("text", ["lots", "", "4X", "-1G", "0", "0%", "150%", "G"])
def test_bad_sizes_are_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(SizeError) as info:
        parse_size(text, "memory_limit")
    assert "memory_limit" in str(info.value)


def test_format_size() -> None:
    assert format_size(512 * 2**20) == "512 MiB"
    assert format_size(4 * 2**30) == "4.0 GiB"


def test_kernel_table_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('theme = "dark"\n[kernel]\nprotection = "idle"\nundo_depth = 5\n'
                    'memory_limit = "1G"\nsnapshot_budget = 268435456\nidle_seconds = 3\n'
                    'undo_depht = 2\ncopy_limit = "lots"\n')
    settings = load_settings(path)
    assert settings.protection == "idle" and settings.undo_depth == 5
    assert settings.memory_limit == 2**30 and settings.snapshot_budget == 2**28
    assert settings.idle_seconds == 3.0
    assert settings.copy_limit == ProtectionSettings().copy_limit  # the bad value is not taken
    assert any("undo_depht" in w for w in settings.warnings)
    assert any("copy_limit" in w and "'lots'" in w for w in settings.warnings)
    assert parse_config({"theme": "dark", "kernel": {"protection": "idle"}}).warnings == []


def test_bad_settings_raise_clearly() -> None:
    settings = ProtectionSettings()
    for key, value, words in [("protection", "sometimes", "one of"), ("undo_depth", -1, "0 to 100"),
                              ("memory_limit", "1M", "64 MiB"), ("idle_seconds", "x", "seconds")]:
        with pytest.raises(ValueError, match=words):
            settings.set(key, value)


def test_chain_trims_to_depth_and_says_why() -> None:
    chain = RestoreChain(undo_depth=2, budget=2**40)
    dropped: list[int] = []
    for count in range(1, 6):  # pids that do not exist hold nothing
        dropped += chain.add(RestorePoint(pid=10**7 + count, count=count))
    assert [p.count for p in chain.points] == [3, 4, 5]
    assert dropped == [10**7 + 1, 10**7 + 2]
    assert [p.count for p in chain.undo_targets(5)] == [3, 4]
    assert "cell [1]" in chain.gone[0] and "undo_depth=2" in chain.gone[0]
    chain.set_aside(3)  # an undo to the state after cell [3]: the newer points go
    assert chain.drop_aside() == [10**7 + 4, 10**7 + 5]


def test_kernelspec_install_takes_the_memory_limit(tmp_path: Path, capsys) -> None:
    import json

    from ipytui.kernel.tools import kernelspec

    prefix = str(tmp_path / "prefix")
    assert kernelspec.main(["install", "--prefix", prefix, "--name", "ipytui-mem",
                            "--memory-limit", "80%", "--protection", "idle"]) == 0
    spec = json.loads((tmp_path / "prefix/share/jupyter/kernels/ipytui-mem/kernel.json").read_text())
    argv = spec["argv"]
    assert argv[argv.index("--memory-limit") + 1] == "80%"
    assert argv[argv.index("--protection") + 1] == "idle"
    assert argv[-2:] == ["-f", "{connection_file}"]
    assert kernelspec.main(["install", "--prefix", prefix, "--name", "ipytui-bad",
                            "--memory-limit", "lots"]) == 2
    assert "'lots' is not a size" in capsys.readouterr().err
    assert not (tmp_path / "prefix/share/jupyter/kernels/ipytui-bad").exists()
