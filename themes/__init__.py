"""ipytui themes: the app stylesheet and Textual ``Theme`` objects.

The stylesheet (``app.tcss``) uses only Textual's standard theme variables
(``$primary``, ``$secondary``, ``$error``…), so every registered theme, ours
or Textual's own, styles the whole app. Colours live here and in the .tcss,
never in widget code.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

APP_CSS_PATH = Path(__file__).with_name("app.tcss")

DARK = Theme(
    name="ipytui-dark",
    primary="#4EA1F3",
    secondary="#C792EA",
    accent="#FFB454",
    warning="#FFB454",
    error="#F07178",
    success="#8BD49C",
    foreground="#D8DEE9",
    background="#14161B",
    surface="#1B1E25",
    panel="#262A33",
    dark=True,
)

LIGHT = Theme(
    name="ipytui-light",
    primary="#1F5FAD",
    secondary="#8839B5",
    accent="#B35C00",
    warning="#9A5B00",
    error="#B3261E",
    success="#1E7B34",
    foreground="#1F2328",
    background="#F6F7F9",
    surface="#FFFFFF",
    panel="#E4E7EC",
    dark=False,
)

HIGH_CONTRAST = Theme(
    name="ipytui-high-contrast",
    primary="#00E5FF",
    secondary="#FFFF00",
    accent="#FF9900",
    warning="#FFFF00",
    error="#FF5555",
    success="#00FF66",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    boost="#333333",
    dark=True,
    text_alpha=1.0,
    luminosity_spread=0.3,
)

THEMES = (DARK, LIGHT, HIGH_CONTRAST)

# Short names accepted by --theme and the config file.
ALIASES = {
    "dark": DARK.name,
    "light": LIGHT.name,
    "high-contrast": HIGH_CONTRAST.name,
    "hc": HIGH_CONTRAST.name,
}

DEFAULT_THEME = DARK.name


def resolve_theme_name(name: str | None) -> str:
    """Map a short name (dark, light, high-contrast) to a registered theme name."""
    if not name:
        return DEFAULT_THEME
    return ALIASES.get(name, name)


def register_themes(app) -> None:
    """Register every ipytui theme with a Textual app."""
    for theme in THEMES:
        app.register_theme(theme)
