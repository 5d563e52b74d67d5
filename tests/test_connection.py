"""Connection files: Jupyter's format, private modes, fresh keys, ports, clear read errors."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from ipytui.kernel.protocol.connection import (
    CHANNELS,
    ConnectionError_,
    ConnectionInfo,
    find_connection_file,
    new_connection_info,
    new_key,
    read_connection_file,
    write_connection_file,
)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runtime" / "nested"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(path))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_is_0600_and_default_dir_is_0700(runtime: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = write_connection_file(new_connection_info())
    finally:
        os.umask(old)
    assert path.parent == runtime
    assert path.name.startswith("kernel-") and path.suffix == ".json"
    assert mode(path) == 0o600
    assert mode(runtime) == 0o700
    assert not [p for p in runtime.iterdir() if p.name.startswith(".")]  # no temp file left


def test_explicit_path_gets_a_private_parent(tmp_path: Path) -> None:
    path = write_connection_file(new_connection_info(), tmp_path / "deep" / "er" / "k.json")
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_overwriting_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_connection_file(new_connection_info(), path)
    assert mode(path) == 0o600


def test_jupyter_format_round_trip(tmp_path: Path) -> None:
    info = new_connection_info(kernel_name="ipytui")
    path = write_connection_file(info, tmp_path / "k.json")
    data = json.loads(path.read_text())
    assert {f"{ch}_port" for ch in CHANNELS} <= set(data)
    assert data["ip"] == "127.0.0.1" and data["transport"] == "tcp"
    assert data["signature_scheme"] == "hmac-sha256" and data["kernel_name"] == "ipytui"
    assert data["key"] == info.key
    assert "curve_publickey" not in data  # absent optional fields are not written as null
    assert read_connection_file(path) == info


def test_unknown_fields_survive_a_round_trip(tmp_path: Path) -> None:
    data = {**new_connection_info().to_dict(), "jupyter_future_field": [1, 2]}
    path = tmp_path / "k.json"
    path.write_text(json.dumps(data))
    info = read_connection_file(path)
    assert info.extra == {"jupyter_future_field": [1, 2]}
    assert info.to_dict()["jupyter_future_field"] == [1, 2]


def test_fresh_256_bit_key_every_time() -> None:
    keys = {new_key() for _ in range(50)} | {new_connection_info().key for _ in range(5)}
    assert len(keys) == 55
    for key in keys:
        assert len(key) == 64 and len(bytes.fromhex(key)) == 32


def test_free_ports_are_distinct_and_bindable() -> None:
    info = new_connection_info()
    ports = [info.port(ch) for ch in CHANNELS]
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_port_base_order() -> None:
    info = new_connection_info(port_base=41000)
    assert [info.port(ch) for ch in ("shell", "iopub", "stdin", "control", "hb")] == [
        41000, 41001, 41002, 41003, 41004]
    assert info.url("control") == "tcp://127.0.0.1:41003"


@pytest.mark.parametrize("base", [0, 65532, 70000])
def test_port_base_out_of_range(base: int) -> None:
    with pytest.raises(ConnectionError_, match="port-base"):
        new_connection_info(port_base=base)


def test_kernel_cli_port_base_writes_ports_in_order(tmp_path: Path) -> None:
    """``python -m ipytui.kernel --port-base N -f FILE`` makes FILE with N..N+4 in spec order."""
    from ipytui.kernel.supervisor.main import _connection, build_parser

    args = build_parser().parse_args(["--port-base", "42000", "-f", str(tmp_path / "k.json")])
    path, info, owns = _connection(args)
    assert not owns  # a path was given: the caller owns it
    data = json.loads(Path(path).read_text())
    assert [data[f"{ch}_port"] for ch in ("shell", "iopub", "stdin", "control", "hb")] == [
        42000, 42001, 42002, 42003, 42004]


def test_urls() -> None:
    info = ConnectionInfo(shell_port=1, ip="::1")
    assert info.url("shell") == "tcp://[::1]:1"
    assert ConnectionInfo(shell_port=2, ip="0.0.0.0").url("shell") == "tcp://127.0.0.1:2"
    assert ConnectionInfo(shell_port=2, ip="0.0.0.0").bind_url("shell") == "tcp://0.0.0.0:2"
    ipc = ConnectionInfo(shell_port=3, ip="/tmp/k", transport="ipc")
    assert ipc.url("shell") == "ipc:///tmp/k-3" and ipc.is_loopback


# -- read errors say what is wrong ------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError_, match="no connection file at .*nope.json"):
        read_connection_file(tmp_path / "nope.json")


@pytest.mark.parametrize(("text", "why"), [
    ("{not json", "cannot read connection file"),
    ("", "cannot read connection file"),
    ("[1, 2]", "does not hold a JSON object"),
    ('{"shell_port": "abc"}', "bad connection info"),
    ('{"shell_port": 1, "transport": "udp"}', "unknown transport 'udp'"),
    ('{"shell_port": 1, "no_such": 1, "ip": 5, "key": "k", "bogus_port": 9}', None),
])
def test_bad_contents(tmp_path: Path, text: str, why: str | None) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    if why is None:
        assert read_connection_file(path).shell_port == 1  # unknown keys are kept, not fatal
        return
    with pytest.raises(ConnectionError_, match=why) as info:
        read_connection_file(path)
    assert str(path) in str(info.value) or why.startswith(("bad", "unknown"))


def test_a_directory_is_not_a_connection_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError_, match="cannot read connection file"):
        read_connection_file(tmp_path)


# -- finding files ------------------------------------------------------------------------
def test_find_by_path_id_and_newest(runtime: Path) -> None:
    first = write_connection_file(new_connection_info(), runtime / "kernel-aaa111.json")
    second = write_connection_file(new_connection_info(), runtime / "kernel-bbb222.json")
    later = time.time() + 10
    os.utime(second, (later, later))
    assert find_connection_file(str(first)) == first
    assert find_connection_file("aaa111") == first
    assert find_connection_file(None) == second
    with pytest.raises(ConnectionError_, match="no connection file matches 'zzz'"):
        find_connection_file("zzz")
