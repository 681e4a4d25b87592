"""The app's first start on a desktop (issue 26): a plain sentence and exit 2 where Qt used to abort, the platform
plugin chosen before Qt loads (Wayland, else X11), and `make run`'s system libraries."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.display import (
    EXIT_NO_DISPLAY,
    WAYLAND_LIBRARIES,
    XCB_LIBRARIES,
    choose_platform,
    missing_packages,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "packaging" / "system-deps.sh"
QT_ABORT_WORDS = ("could not load the Qt platform plugin", "no Qt platform plugin could be initialized",
                  "Aborted", "core dumped", "Fatal Python error", "Traceback")


def all_load(_soname: str) -> bool:
    return True


def hide(*hidden: str):
    return lambda soname: soname not in hidden


def test_no_display_names_what_is_missing_and_the_terminal_commands():
    choice = choose_platform({}, "linux", all_load)
    assert choice.problem is not None and choice.platform is None
    assert "DISPLAY" in choice.problem and "WAYLAND_DISPLAY" in choice.problem
    assert "`python -m core live`" in choice.problem and "`python -m core render`" in choice.problem
    assert "\n" not in choice.problem


def test_x11_with_its_libraries_uses_xcb():
    choice = choose_platform({"DISPLAY": ":0"}, "linux", all_load)
    assert choice.problem is None and choice.platform == "xcb" and ":0" in choice.reason


def test_a_missing_xcb_library_names_its_package_and_the_apt_get_command():
    choice = choose_platform({"DISPLAY": ":0"}, "linux", hide("libxcb-cursor.so.0"))
    assert choice.problem is not None
    assert "libxcb-cursor0" in choice.problem and "`sudo apt-get install libxcb-cursor0`" in choice.problem
    assert "python -m core live" in choice.problem and "\n" not in choice.problem
    several = choose_platform({"DISPLAY": ":0"}, "linux", hide("libxcb-cursor.so.0", "libxkbcommon-x11.so.0"))
    assert "`sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0`" in several.problem


def test_wayland_sessions_use_the_wayland_plugin_and_fall_back_to_xwayland_with_a_reason():
    both = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    assert choose_platform(both, "linux", all_load, wayland_plugin=True).platform == "wayland"
    assert choose_platform({"WAYLAND_DISPLAY": "wayland-0"}, "linux", all_load, True).platform == "wayland"
    no_plugin = choose_platform(both, "linux", all_load, wayland_plugin=False)
    assert no_plugin.platform == "xcb" and "no wayland plugin" in no_plugin.reason
    assert choose_platform({"WAYLAND_DISPLAY": "wayland-0"}, "linux", all_load, False).problem is not None
    fallback = choose_platform(both, "linux", hide("libwayland-cursor.so.0"))
    assert fallback.platform == "xcb" and "XWayland" in fallback.reason and "libwayland-cursor0" in fallback.reason
    # Wayland alone, without its libraries and without XWayland: the packages to install
    alone = choose_platform({"WAYLAND_DISPLAY": "wayland-0"}, "linux", hide("libwayland-client.so.0"))
    assert alone.problem is not None and "sudo apt-get install libwayland-client0" in alone.problem
    # the user's explicit choice of X11 is kept in a Wayland session
    assert choose_platform({**both, "QT_QPA_PLATFORM": "xcb"}, "linux", all_load).platform == "xcb"


def test_an_explicit_screenless_platform_and_other_systems_need_no_check():
    for name in ("offscreen", "minimal", "vnc"):
        choice = choose_platform({"QT_QPA_PLATFORM": name}, "linux", hide(*XCB_LIBRARIES))
        assert choice.problem is None and choice.platform == name
    for system in ("win32", "darwin"):
        assert choose_platform({}, system, hide(*XCB_LIBRARIES)).problem is None


def test_the_installed_pyside6_carries_the_wayland_plugin():
    """PySide6-Essentials >= 6.6 ships libqwayland*.so on Linux; the lookup must find it without importing Qt."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux plugin")
    from app.display import wayland_plugin_present

    assert wayland_plugin_present()


def test_missing_packages_lists_each_package_once_in_table_order():
    assert missing_packages(XCB_LIBRARIES, all_load) == []
    assert missing_packages(WAYLAND_LIBRARIES, hide("libEGL.so.1", "libwayland-client.so.0")) == [
        "libwayland-client0", "libegl1"]


def test_the_real_loader_finds_this_machines_xcb_libraries():
    """The CI machine has packaging/system-deps.sh's runtime set: the ctypes check must find it (a check that
    always failed would stop every desktop start)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux libraries")
    assert choose_platform({"DISPLAY": ":0"}).problem is None


def test_prepare_display_sets_the_choice_and_logs_it(caplog):
    from app.__main__ import prepare_display

    env = {"DISPLAY": ":7"}
    with caplog.at_level("INFO", logger="app"):
        assert prepare_display(env) is None
    if sys.platform.startswith("linux"):
        assert env["QT_QPA_PLATFORM"] == "xcb"
        assert "display: X11 display :7" in caplog.text


def _clean_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(REPO), HEADCAST_CONFIG_DIR=str(tmp_path / "config"),
               HEADCAST_DATA_DIR=str(tmp_path / "data"))
    return env


def _assert_one_plain_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == EXIT_NO_DISPLAY, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for word in QT_ABORT_WORDS:
        assert word not in r.stderr + r.stdout
    return lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland")
def test_python_m_app_without_a_display_exits_2_with_one_sentence(tmp_path):
    r = subprocess.run([sys.executable, "-m", "app"], cwd=REPO, env=_clean_env(tmp_path), capture_output=True,
                       text=True, timeout=120)
    line = _assert_one_plain_line(r)
    assert "no display" in line and "python -m core live" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland")
def test_python_m_app_with_the_xcb_libraries_hidden_exits_2_with_the_apt_get_line(tmp_path):
    """DISPLAY is set but libxcb-cursor.so.0 does not load (the loader is stubbed: uninstalling a package is not
    a test's business): the sentence names the package and the command, and Qt never starts."""
    code = ("import sys, app.display as d; real = d._load; "
            "d._load = lambda s: s != 'libxcb-cursor.so.0' and real(s); "
            "from app.__main__ import main; sys.exit(main([]))")
    env = {**_clean_env(tmp_path), "DISPLAY": ":93"}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    line = _assert_one_plain_line(r)
    assert "sudo apt-get install libxcb-cursor0" in line and "python -m core render" in line


# ---- packaging/system-deps.sh -----------------------------------------------------------------------------

def _script_set(name: str) -> list[str]:
    match = re.search(rf'^{name}="([^"]*)"', SCRIPT.read_text(), re.MULTILINE)
    assert match, name
    return match.group(1).split()


def test_the_runtime_set_covers_every_library_the_display_check_loads_and_no_test_tool():
    runtime, test = set(_script_set("RUNTIME")), set(_script_set("TEST"))
    assert set(XCB_LIBRARIES.values()) | set(WAYLAND_LIBRARIES.values()) <= runtime
    assert "libportaudio2" in runtime  # the microphone
    assert not runtime & test
    assert {"espeak-ng", "xvfb", "pulseaudio", "ffmpeg"} <= test


def _fake_tools(tmp_path: Path, uid: int, missing: tuple[str, ...]) -> dict:
    """dpkg-query that reports `missing` as not installed, id -u that answers `uid`, apt-get that records."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "dpkg-query": f'for last; do :; done\ncase " {" ".join(missing)} " in *" $last "*) exit 1;; esac\n'
                      'printf "install ok installed"\n',
        "id": f"echo {uid}\n",
        "apt-get": f'echo "apt-get $*" >> "{tmp_path / "apt.log"}"\n',
    }
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_system_deps_installs_a_missing_runtime_library_as_root(tmp_path):
    env = _fake_tools(tmp_path, 0, ("libxcb-cursor0",))
    r = subprocess.run(["sh", str(SCRIPT), "runtime"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "apt.log").read_text()
    assert "apt-get install -y -qq libxcb-cursor0" in log and "update" in log


def test_system_deps_prints_the_one_apt_get_line_when_not_root(tmp_path):
    env = _fake_tools(tmp_path, 1000, ("libxcb-cursor0", "espeak-ng"))
    r = subprocess.run(["sh", str(SCRIPT), "runtime"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (tmp_path / "apt.log").exists()
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("sudo apt-get install -y libxcb-cursor0")  # espeak-ng: test set
    r = subprocess.run(["sh", str(SCRIPT), "all"], env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().endswith("sudo apt-get install -y libxcb-cursor0 espeak-ng")


def test_system_deps_is_silent_when_everything_is_installed_and_rejects_an_unknown_set(tmp_path):
    env = _fake_tools(tmp_path, 0, ())
    r = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and not (tmp_path / "apt.log").exists()
    r = subprocess.run(["sh", str(SCRIPT), "bogus"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "runtime, test or all" in r.stderr


def test_make_run_checks_the_runtime_set_and_make_test_both(tmp_path):
    r = subprocess.run(["make", "-n", "runtime-deps", "system-deps"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert "system-deps.sh runtime" in r.stdout and "system-deps.sh all" in r.stdout, r.stdout + r.stderr
    rules = (REPO / "Makefile").read_text()
    assert re.search(r"^run: runtime-deps ", rules, re.MULTILINE)
    assert re.search(r"^test: system-deps ", rules, re.MULTILINE)


def test_the_readme_names_the_runtime_and_test_packages():
    readme = (REPO / "README.md").read_text()
    for package in _script_set("RUNTIME") + _script_set("TEST"):
        assert package in readme, package
