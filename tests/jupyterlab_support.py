"""JupyterLab on 127.0.0.1 and headless Chromium, for the notebook tests.

``LabServer`` starts ``jupyter lab`` with a private token, runtime, config and
data dirs and the ipytui kernelspec on JUPYTER_PATH, and waits until its API
answers; ``chromium()`` is a headless Chromium driven by selenium through
Debian's chromedriver. Everything started here is stopped by its own handle.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian: chromium, chromium-driver)"
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"needs {module} (pip)"
    return None


# Extensions installed here that only get in the way of a test: ipyparallel's asks
# for a server extension it did not find, in a modal dialog.
DISABLED = ("ipyparallel-labextension",)


def quiet_lab(config_dir: Path) -> None:
    """No news prompt, no unrelated extensions: nothing covers the notebook."""
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in DISABLED}}))
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))


def jupyter_paths(first: Path) -> str:
    """JUPYTER_PATH: ours first, then the base Python's share/jupyter, where the
    widget labextension lives when tests run in a venv with system site-packages."""
    paths = [str(first)]
    base = os.path.join(sys.base_prefix, "share", "jupyter")
    if sys.base_prefix != sys.prefix and os.path.isdir(base):
        paths.append(base)
    return os.pathsep.join(paths)


class LabServer:
    """One JupyterLab server of our own, serving ``root``."""

    def __init__(self, root: Path, jupyter_path: Path, env: dict[str, str]) -> None:
        quiet_lab(Path(env["JUPYTER_CONFIG_DIR"]))
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(root.parent / "jupyterlab.log", "wb")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
             "--LabApp.news_url=", "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env={**env, "JUPYTER_PATH": jupyter_paths(jupyter_path)}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def api(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}",
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own server
            return json.loads(response.read())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); see its log")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise TimeoutError("jupyter lab did not answer")

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def stop(self) -> None:
        """End the server and every kernel it started (its own process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)


def chromium(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium (selenium), window of a fixed size, keeping a performance log
    (``NotebookPage.sent_frames`` reads the WebSocket frames from it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"),
                            options=options)


class NotebookPage:
    """One notebook open in JupyterLab, driven the way a user does (clicks, keys)."""

    def __init__(self, driver: Any, shots: Path | None) -> None:
        from selenium.webdriver.common.by import By

        self.driver = driver
        self.by = By
        self.shots = shots
        self._sent: list[bytes] = []  # WebSocket frames the page sent, read so far

    def wait(self, predicate: Any, what: str, timeout: float = 120.0) -> Any:
        """Poll predicate until truthy (selenium errors count as not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except Exception:  # noqa: BLE001 - stale or not-yet-present elements
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                self.shot("timeout")
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def cells(self) -> list[Any]:
        return self.driver.find_elements(self.by.CSS_SELECTOR, ".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Any:
        return self.cells()[index]

    def status_text(self) -> str:
        return self.driver.find_element(self.by.CSS_SELECTOR, "#jp-main-statusbar").text

    def wait_kernel_idle(self) -> None:
        self.wait(lambda: "| Idle" in self.status_text(), "the kernel to be idle", timeout=90)

    def run_cell(self, index: int) -> None:
        """Select the cell by its prompt and run it with Ctrl+Enter."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        self.dismiss_dialogs()  # a late "kernel restarting" notice would swallow the click
        cell = self.cell(index)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        cell.find_element(self.by.CSS_SELECTOR, ".jp-InputPrompt").click()
        ActionChains(self.driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER) \
            .key_up(Keys.CONTROL).perform()

    def output_text(self, index: int) -> str:
        outputs = self.cell(index).find_elements(self.by.CSS_SELECTOR, ".jp-OutputArea-output")
        return "\n".join(o.text for o in outputs)

    def find(self, index: int, css: str) -> list[Any]:
        return self.cell(index).find_elements(self.by.CSS_SELECTOR, css)

    def press(self, key: str, times: int = 1) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        for _ in range(times):
            ActionChains(self.driver).send_keys(key).perform()

    def sent_frames(self) -> list[bytes]:
        """Every WebSocket frame the page has sent so far (JupyterLab's kernel messages,
        JSON or its binary framing), from Chromium's performance log."""
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            if event.get("method") == "Network.webSocketFrameSent":
                frame = event["params"]["response"]
                data = frame["payloadData"]
                self._sent.append(base64.b64decode(data) if frame["opcode"] == 2 else data.encode())
        return self._sent

    def accept_dialog(self) -> str:
        """Click a dialog's default button; its text."""
        button = self.wait(lambda: self.driver.find_elements(
            self.by.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"), "a dialog")
        text = self.driver.find_element(self.by.CSS_SELECTOR, ".jp-Dialog").text
        button[0].click()
        return text

    def dismiss_dialogs(self) -> None:
        for button in self.driver.find_elements(self.by.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"):
            button.click()

    def toggle_breakpoint(self, index: int, line: int) -> None:
        """Click the breakpoint gutter beside line ``line`` of cell ``index``."""
        cell = self.cell(index)
        number = self.wait(lambda: [g for g in cell.find_elements(
            self.by.CSS_SELECTOR, ".cm-lineNumbers .cm-gutterElement") if g.text == str(line)],
            f"line number {line}")[0]
        gutter = [g for g in cell.find_elements(
            self.by.CSS_SELECTOR, ".cm-breakpoint-gutter .cm-gutterElement")
            if g.size["height"] > 0 and abs(g.location["y"] - number.location["y"]) < 3]
        gutter[0].click()
