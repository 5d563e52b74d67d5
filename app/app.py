"""IpytuiApp: the full-screen session on one kernel."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipytui.themes import APP_CSS_PATH, THEMES, register_themes, resolve_theme_name
from textual.app import App, SystemCommand
from textual.reactive import Initialize, Reactive
from textual.screen import Screen

from .config import Config, load_config
from .main_screen import MainScreen
from .stale_kernels import StaleKernels


@dataclass
class ExitInfo:
    """What the CLI prints after the UI closes."""

    connection_file: str | None
    kernel_shut_down: bool
    kernel_responding: bool = True  # False: its heartbeat was lost when the UI closed


def _resolve_connection(connection: Any) -> tuple[Any, str | None]:
    """ConnectionInfo ready to connect with: Curve client keys filled in for
    encrypted kernels (a private connection file or a share file)."""
    from ipytui.kernel.protocol.connection import ConnectionInfo
    from ipytui.kernel.protocol.credentials import client_info

    if isinstance(connection, ConnectionInfo):
        return connection, None
    path = os.fspath(connection)
    return client_info(path), str(Path(path).resolve())


def _initial_theme(app: IpytuiApp) -> str:
    """The theme to start with: the one asked for if there is such a theme."""
    register_themes(app)
    wanted = resolve_theme_name(app.requested_theme)
    if wanted in app.available_themes:
        return wanted
    fallback = resolve_theme_name(None)
    app.config.warnings.append(f"unknown theme {app.requested_theme!r}; using {fallback}")
    return fallback


class IpytuiApp(StaleKernels, App[ExitInfo]):
    """Textual app for one kernel; the kernel outlives it unless asked otherwise."""

    CSS_PATH = APP_CSS_PATH
    TITLE = "ipytui"
    # Textual asks for the theme as it sets the app up, so the stylesheet gets
    # parsed once, in our colours: setting it later would parse it all again.
    theme: Reactive[str] = Reactive(Initialize(_initial_theme))

    def __init__(
        self,
        connection: Any,
        *,
        config: Config | None = None,
        theme: str | None = None,
        shutdown_on_exit: bool = False,
        deterministic: bool = False,
        client_factory=None,
        offer_recovery: bool = False,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.requested_theme = theme or self.config.theme
        super().__init__()
        self.info, self.connection_file = _resolve_connection(connection)
        self.shutdown_on_exit = shutdown_on_exit
        self.deterministic = deterministic
        self.client_factory = client_factory
        self.offer_recovery = offer_recovery  # a fresh kernel of ours: stale ones may replace it
        self.offered = None
        self.main_screen = self._make_screen(self.info)

    def _make_screen(self, info: Any) -> MainScreen:
        return MainScreen(
            info,
            config=self.config,
            client_factory=self.client_factory,
            deterministic=self.deterministic,
        )

    async def switch_kernel(self, connection_file: Path) -> None:
        """Move onto another kernel (a recovered one); the fresh kernel we started is shut down."""
        old = self.main_screen
        await old.close_session(shutdown=self.offer_recovery)
        self.info, self.connection_file = _resolve_connection(connection_file)
        self.main_screen = self._make_screen(self.info)
        self.main_screen.connect()
        # On top of the old one (Textual keeps a bottom screen): its session is closed.
        await self.push_screen(self.main_screen)

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def on_load(self) -> None:
        self.main_screen.connect()

    def on_mount(self) -> None:
        for warning in self.config.warnings:
            self.notify(warning, title="config", severity="warning")
        self.start_offering()

    # -- quitting -------------------------------------------------------------------
    async def action_quit(self) -> None:
        await self.quit_session(shutdown=self.shutdown_on_exit)

    async def quit_session(self, *, shutdown: bool) -> None:
        screen = self.main_screen
        beat, state = screen.session.heartbeat_ok, screen.lifecycle
        # Not heard from: a lost heartbeat, or never an answer (no beat yet while starting).
        responding = state not in ("dead", "unreachable") and (
            beat is True or (beat is None and state != "starting"))
        await self.main_screen.close_session(shutdown=shutdown)
        self.exit(ExitInfo(self.connection_file, shutdown, responding))

    # -- command palette -------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        yield SystemCommand("Interrupt kernel", "Interrupt the running cell", main.action_interrupt)
        yield SystemCommand("Restart kernel", "Fresh namespace on the same ports", main.action_restart)
        yield SystemCommand(
            "Restart and restore",
            "Restart back to the latest snapshot",
            main.action_restart_restore,
        )
        yield SystemCommand("Clear output", "Empty the output stream", main.action_clear_output)
        yield SystemCommand("Toggle peers panel", "Show or hide the peers", main.action_toggle_peers)
        yield SystemCommand(
            "Toggle draft sharing", "Share your input with peers as you type, or stop",
            main.action_toggle_share_draft,
        )
        if main.cluster is not None and main.cluster.engines:
            yield SystemCommand(
                "Cluster pane: next engine", "One engine's own stream (F12)", main.action_next_engine
            )
        yield SystemCommand("Keys", "Every key of ipytui", main.action_show_keys)
        for theme in THEMES:
            label = theme.name.removeprefix("ipytui-").replace("-", " ")
            yield SystemCommand(
                f"Theme: {label}", f"Switch to the {label} theme", lambda t=theme.name: self._set_theme(t)
            )
        yield SystemCommand(
            "Quit, kernel keeps running", "Leave; come back with ipytui --existing", self.action_quit
        )
        yield SystemCommand(
            "Quit and shut down the kernel",
            "Leave and stop the kernel",
            lambda: self.run_worker(self.quit_session(shutdown=True)),
        )

    def _set_theme(self, name: str) -> None:
        self.theme = name
