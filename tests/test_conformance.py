"""jupyter_kernel_test against the installed ``ipytui`` kernelspec.

The kernelspec is installed into a temporary prefix and found through
$JUPYTER_PATH, so the machine's own Jupyter setup plays no part.
jupyter_kernel_test starts the kernel with jupyter_client's KernelManager by
kernel name, exactly as JupyterLab or nbclient would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyter_kernel_test as jkt
import pytest
from ipytui.kernel.tools import kernelspec
from jupyter_kernel_test.msgspec_v5 import validate_message

pytestmark = pytest.mark.timeout(120)

IOPUB_WAIT = 5.0


@pytest.fixture(scope="module", autouse=True)
def ipytui_kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install our kernelspec in a tmp prefix; point Jupyter (and the kernel) at tmp dirs.

    Module scope runs before unittest's setUpClass, which starts the kernel.
    """
    root = tmp_path_factory.mktemp("conformance")
    spec_dir = kernelspec.install(prefix=str(root / "prefix"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "prefix" / "share" / "jupyter"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTUI_DATA_DIR", str(root / "ipytui"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        yield spec_dir


def test_kernelspec_is_found() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("ipytui")
    assert spec.argv[1:] == ["-m", "ipytui.kernel", "--exit-on-restart", "-f", "{connection_file}"]
    assert spec.display_name == "Python 3 (ipytui)"
    assert spec.language == "python"
    assert spec.interrupt_mode == "signal"
    import importlib.util

    debugger = importlib.util.find_spec("debugpy") is not None  # JupyterLab's debugger switch
    assert spec.metadata == {"supported_encryption": ["curve"], "debugger": debugger}


def test_cli_installs_for_the_user_end_to_end(tmp_path: Path) -> None:
    """``ipytui kernelspec install --user`` (the console script) and ``python -m`` both work."""
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    ipytui = shutil.which("ipytui", path=os.path.dirname(sys.executable)) or shutil.which("ipytui")
    assert ipytui, "the ipytui console script is not installed"
    done = subprocess.run([ipytui, "kernelspec", "install", "--user"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "data" / "kernels" / "ipytui" / "kernel.json").read_text())
    assert spec["argv"][1:] == ["-m", "ipytui.kernel", "--exit-on-restart", "-f", "{connection_file}"]
    assert os.path.samefile(spec["argv"][0], sys.executable)  # the Python ipytui runs on
    assert spec["interrupt_mode"] == "signal"
    done = subprocess.run([sys.executable, "-m", "ipytui.kernel.tools.kernelspec", "install",
                           "--prefix", str(tmp_path / "p"), "--name", "other",
                           "--interrupt-mode", "message"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "p" / "share" / "jupyter" / "kernels" / "other" /
                       "kernel.json").read_text())
    assert spec["interrupt_mode"] == "message"
    listed = subprocess.run([ipytui, "kernelspec", "list"], capture_output=True, text=True,
                            timeout=60, env={**env, "JUPYTER_PATH": str(tmp_path / "p/share/jupyter")})
    assert "ipytui" in listed.stdout and "other" in listed.stdout


def test_install_without_jupyter_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jupyter_client is not a runtime dependency: the same directories are used without it."""
    monkeypatch.setitem(sys.modules, "jupyter_client", None)
    monkeypatch.setitem(sys.modules, "jupyter_client.kernelspec", None)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    user = kernelspec.install(user=True)
    assert user == tmp_path / "data" / "kernels" / "ipytui"
    prefixed = kernelspec.install("named", prefix=str(tmp_path / "p"))
    assert prefixed == tmp_path / "p" / "share" / "jupyter" / "kernels" / "named"
    for path in (user, prefixed):
        spec = json.loads((path / "kernel.json").read_text())
        assert spec == kernelspec.kernel_json()
        assert stat.S_IMODE(path.stat().st_mode) == 0o755  # readable by everyone
    assert set(kernelspec.find_specs()) >= {"ipytui"}


class TestIpytuiKernel(jkt.KernelTests):
    """The upstream checks; only the per-message IOPub wait is longer (see execute_helper)."""

    kernel_name = "ipytui"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n * n for n in range(4)]", "result": "[0, 1, 4, 9]"},
        {"code": "'ab' * 2", "result": "'abab'"},
    ]
    code_display_data = [
        {"code": "display({'text/html': '<b>hi</b>', 'text/plain': 'hi'}, raw=True)",
         "mime": "text/html"},
        {"code": "class H:\n    def _repr_html_(self):\n        return '<i>h</i>'\ndisplay(H())",
         "mime": "text/html"},
        {"code": "class M:\n    def _repr_markdown_(self):\n        return '*m*'\ndisplay(M())",
         "mime": "text/markdown"},
        {"code": "display(42)", "mime": "text/plain"},
    ]
    code_clear_output = "print('first'); clear_output()"

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n",
                             "import os", "x = [1,\n 2]"]
    incomplete_code_samples = ["print('''hello", "def f(x):", "for i in range(3):\n    x = i",
                               "x = [1,"]
    invalid_code_samples = ["import = 7", "1 +* 2", "def f(:"]

    completion_samples = [
        {"text": "zip", "matches": {"zip"}},
        {"text": "pri", "matches": {"print"}},
        {"text": "str.upp", "matches": {"upper"}},
        {"text": "from os import pat", "matches": {"path", "pathconf", "pathconf_names", "pathsep"}},
    ]
    code_inspect_sample = "zip"
    code_page_something = "zip?"

    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "1?2*"


class TestIopubWelcome(jkt.IopubWelcomeTests):
    kernel_name = "ipytui"
    support_iopub_welcome = True

    def execute_helper(self, code: str, timeout: int = jkt.TIMEOUT, silent: bool = False,
                       store_history: bool = True,
                       stop_on_error: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """jupyter_kernel_test's own execute_helper, waiting up to 5 s per IOPub message.

        Upstream allows 0.1 s between two IOPub messages, which a loaded 2-core
        machine (a descheduled process) can exceed; the checks are unchanged.
        """
        msg_id = self.kc.execute(code=code, silent=silent, store_history=store_history,
                                 stop_on_error=stop_on_error)
        reply = self.get_non_kernel_info_reply(timeout=timeout)
        assert reply is not None
        validate_message(reply, "execute_reply", msg_id)
        busy_msg = self.kc.get_iopub_msg(timeout=IOPUB_WAIT)
        validate_message(busy_msg, "status", msg_id)
        self.assertEqual(busy_msg["content"]["execution_state"], "busy")
        output_msgs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=IOPUB_WAIT)
            validate_message(msg, msg["msg_type"], msg_id)
            if msg["msg_type"] == "status":
                self.assertEqual(msg["content"]["execution_state"], "idle")
                break
            if msg["msg_type"] == "execute_input":
                self.assertEqual(msg["content"]["code"], code)
                continue
            output_msgs.append(msg)
        return reply, output_msgs
