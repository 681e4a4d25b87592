"""Which Qt platform plugin the window uses, decided before Qt loads one; or why there is no screen to use.

Why: when Qt's platform plugin cannot start (no display at all, or a missing system library such as
libxcb-cursor0, which Ubuntu's desktop install lacks) Qt prints a paragraph about reinstalling and aborts with a
core dump. This module looks first, without importing Qt: it reads the session's environment, loads the plugin's
system libraries with ctypes, and either picks a plugin (Wayland when the session has it and its libraries load,
else X11, directly or through XWayland) or returns one sentence that says what is missing, the command that
installs it, and the terminal commands that need no screen.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# the system libraries each Linux plugin of PySide6's Qt loads that do not ship inside the wheel (from `ldd` of
# libqxcb.so / libqwayland.so and Qt's libQt6XcbQpa.so), with the Debian/Ubuntu package providing each
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
WAYLAND_LIBRARIES = {
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
# plugins that draw without a screen: when the user (or a test) asks for one, there is nothing to check
SCREENLESS_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")
EXIT_NO_DISPLAY = 2


@dataclass(frozen=True)
class DisplayChoice:
    """`platform`: the QT_QPA_PLATFORM to run with (None: leave Qt's own choice, e.g. on Windows or macOS).
    `reason`: one line for the log. `problem`: set when the window cannot open; the one sentence to print."""

    platform: str | None
    reason: str
    problem: str | None = None


def _load(soname: str) -> bool:
    """Whether the dynamic loader finds `soname` (as Qt's plugin will); inside a bundle, also next to it."""
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        pass
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        try:
            ctypes.CDLL(str(Path(bundle) / soname))
            return True
        except OSError:
            pass
    return False


def wayland_plugin_present() -> bool:
    """Whether the installed PySide6 (or the bundle) carries Qt's wayland platform plugin; found without importing
    Qt (older wheels or a trimmed bundle may lack it, and asking Qt for a missing plugin aborts)."""
    import importlib.util

    folders: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        folders.append(Path(bundle) / "PySide6")
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders.extend(Path(p) for p in spec.submodule_search_locations)
    return any(any((f / "Qt" / "plugins" / "platforms").glob("libqwayland*.so")) for f in folders)


def missing_packages(libraries: Mapping[str, str], loads: Callable[[str], bool]) -> list[str]:
    """The packages whose library does not load, in the table's order, each named once."""
    missing: list[str] = []
    for soname, package in libraries.items():
        if package not in missing and not loads(soname):
            missing.append(package)
    return missing


def terminal_commands() -> str:
    """What works without a screen, spelled for how the app was started (a bundle has one executable)."""
    if getattr(sys, "frozen", False):
        return "`headcast live` and `headcast render`"
    return "`python -m core live` and `python -m core render`"


def _apt(packages: list[str]) -> str:
    return f"sudo apt-get install {' '.join(packages)}"


def choose_platform(env: Mapping[str, str], platform: str | None = None,
                    loads: Callable[[str], bool] | None = None, wayland_plugin: bool | None = None) -> DisplayChoice:
    """Decide the Qt platform plugin for this session, or say why the window cannot open. Qt-free.
    `platform` (default sys.platform), `loads` (default: ctypes) and `wayland_plugin` (default: look for the
    plugin file) are for tests."""
    platform = platform or sys.platform
    loads = loads or _load
    without = f"without a screen, {terminal_commands()} work from a terminal"
    if not platform.startswith("linux"):
        return DisplayChoice(None, f"{platform}: Qt's own platform plugin")
    asked = env.get("QT_QPA_PLATFORM", "").strip()
    first = asked.split(";")[0].split(":")[0].strip().lower()
    if first in SCREENLESS_PLATFORMS:
        return DisplayChoice(asked, f"QT_QPA_PLATFORM={asked} (set by the caller; no screen needed)")
    wayland, x11 = env.get("WAYLAND_DISPLAY", ""), env.get("DISPLAY", "")
    if first and first not in ("xcb", "wayland"):
        return DisplayChoice(asked, f"QT_QPA_PLATFORM={asked} (set by the caller)")
    if not wayland and not x11:
        return DisplayChoice(None, "no display", problem=(
            "Headcast needs a desktop session, but this terminal has no display (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set): start it from a terminal inside your desktop (or `ssh -X`); "
            f"{without}."))
    wayland_missing = missing_packages(WAYLAND_LIBRARIES, loads) if wayland and first != "xcb" else []
    if wayland and first != "xcb" and not wayland_missing:
        if wayland_plugin is None:
            wayland_plugin = wayland_plugin_present()
        if wayland_plugin:
            return DisplayChoice("wayland", f"Wayland session (WAYLAND_DISPLAY={wayland}): Qt's wayland plugin")
        if x11:
            return DisplayChoice("xcb", f"Wayland session, but this PySide6 has no wayland plugin: X11 through "
                                        f"XWayland (DISPLAY={x11})")
        return DisplayChoice(None, "no wayland plugin", problem=(
            "Headcast cannot open its window: this PySide6 has no Wayland plugin and there is no X11 display "
            "(DISPLAY) to fall back to: reinstall it with `pip install --force-reinstall PySide6-Essentials` or "
            f"enable XWayland; without a screen, {terminal_commands()} work from a terminal."))
    if first == "wayland" and not x11:
        why = (f"Qt's Wayland plugin needs {', '.join(wayland_missing)}" if wayland else
               "QT_QPA_PLATFORM=wayland is set but WAYLAND_DISPLAY is not")
        fix = f"install them with `{_apt(wayland_missing)}`" if wayland_missing else "unset QT_QPA_PLATFORM"
        return DisplayChoice(None, "no usable wayland", problem=f"Headcast cannot open its window: {why}; {fix}; "
                                                                 f"{without}.")
    if not x11:
        return DisplayChoice(None, "no usable display", problem=(
            f"Headcast cannot open its window: Qt's Wayland plugin needs {', '.join(wayland_missing)} and there is "
            f"no X11 display (DISPLAY) to fall back to: install them with `{_apt(wayland_missing)}`; {without}."))
    xcb_missing = missing_packages(XCB_LIBRARIES, loads)
    if xcb_missing:
        return DisplayChoice(None, "xcb libraries missing", problem=(
            f"Headcast cannot open its window: Qt's X11 plugin needs {', '.join(xcb_missing)}: install "
            f"{'it' if len(xcb_missing) == 1 else 'them'} with `{_apt(xcb_missing)}` (or `make run`, which "
            f"does it); {without}."))
    if wayland and first != "xcb":
        return DisplayChoice("xcb", f"Wayland session without Qt's wayland libraries ({', '.join(wayland_missing)}"
                                    f" missing): X11 through XWayland (DISPLAY={x11})")
    return DisplayChoice("xcb", f"X11 display {x11}: Qt's xcb plugin")
