"""The desktop bundle, built as a user's download is: from a clean checkout of HEAD, with packaging/build.py.

Slow (PyInstaller over torch: minutes), so marked `slow`, but it runs in CI. It checks that the bundle
- starts under Xvfb (or Qt's offscreen platform where there is no Xvfb and no CI), goes live on the test signal
  with tiny synthetic weights for a few seconds and quits with exit 0 (`--smoke-test`);
- renders a short mp4 with its own `render` command;
and prints its size, build time and cold start (process start -> first window) as measured in this run.

HEADCAST_BUNDLE=<folder> tests an already built bundle instead (the per-OS CI workflow builds once and
tests that). Uncommitted changes are not in the bundle: it is built from `git archive HEAD`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 1800
SMOKE_SECONDS = 3


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """The bundle must not see the source tree or the test's Python: no PYTHONPATH, a fresh user folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HEADCAST_CONFIG_DIR=str(tmp / "config"), HEADCAST_DATA_DIR=str(tmp / "data"), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def _executable(folder: Path) -> Path:
    if sys.platform == "win32":
        return folder / "headcast-cli.exe"  # the console twin: the windowed exe has no stdout
    if folder.suffix == ".app":
        return folder / "Contents" / "MacOS" / "headcast"
    return folder / "headcast"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    given = os.environ.get("HEADCAST_BUNDLE")
    if given:
        return Path(given)
    tmp = tmp_path_factory.mktemp("bundle")
    src = tmp / "src"
    src.mkdir()
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the bundle test builds from `git archive HEAD`: run it in a git checkout with git installed")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True,
                             capture_output=True).stdout
    (tmp / "src.tar").write_bytes(archive)
    with tarfile.open(tmp / "src.tar") as tar:
        tar.extractall(src, filter="data")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "packaging/build.py", "--dist", str(tmp / "dist"), "--work",
                           str(tmp / "work"), "--no-archive"], cwd=src, env=_env(tmp),
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"build failed after {took:.0f} s:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    info = json.loads((tmp / "dist" / "bundle-info.json").read_text())
    print(f"\nbundle: {info['folder']}: {info['folder_mb']} MB, built in {took:.0f} s "
          f"(torch {info['torch']}, cuda {info['cuda']})")
    return Path(info["folder"])


@pytest.fixture(scope="session")
def portrait(tmp_path_factory) -> Path:
    """A real photograph with a face (scikit-image's astronaut)."""
    import cv2
    from skimage import data

    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


class _Display:
    """Xvfb on a free display when available (always in CI); else Qt's offscreen platform."""

    def __init__(self, tmp: Path):
        self.proc = None
        self.env = {"QT_QPA_PLATFORM": "offscreen"}
        xvfb = shutil.which("Xvfb")
        if xvfb is None or sys.platform != "linux":
            if os.environ.get("CI") and sys.platform == "linux":
                pytest.fail("Xvfb is missing: run `make system-deps` (apt-get install xvfb)")
            return
        for n in range(90, 140):
            if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
                break
        self.proc = subprocess.Popen([xvfb, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=open(tmp / "xvfb.log", "wb"))
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{n} did not start: {(tmp / 'xvfb.log').read_text()[-2000:]}")
            time.sleep(0.1)
        self.env = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": f":{n}"}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def test_bundle_goes_live_and_quits_cleanly(bundle, portrait, tmp_path):
    exe = _executable(bundle)
    assert exe.is_file(), f"no executable at {exe}"
    svg_engines = list(bundle.rglob("*qsvgicon*"))
    assert svg_engines, "Qt's SVG icon engine is not bundled: the window would show no icons"
    display = _Display(tmp_path)
    try:
        env = _env(tmp_path, **display.env)
        t0 = time.monotonic()
        proc = subprocess.Popen([str(exe), "--synthetic-weights", "tiny", "--smoke-test", str(SMOKE_SECONDS),
                                 str(portrait)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines, splash_s, window_s = [], None, None
        for line in proc.stdout:  # the smoke test's own deadlines bound this loop
            lines.append(line.rstrip())
            if splash_s is None and "smoke: splash shown" in line:
                splash_s = time.monotonic() - t0
            if window_s is None and "smoke: window shown" in line:
                window_s = time.monotonic() - t0
        err = proc.stderr.read()
        rc = proc.wait(60)
        total = time.monotonic() - t0
    finally:
        display.close()
    out = "\n".join(lines)
    assert rc == 0, f"exit {rc}\n{out}\n{err[-6000:]}"
    assert splash_s is not None and window_s is not None, out
    assert "smoke: stopped cleanly" in out
    frames = next(line for line in lines if "preview frames in" in line)
    assert int(frames.split("smoke: ")[1].split()[0]) > 0
    print(f"\nbundle cold start: splash after {splash_s:.1f} s, main window after {window_s:.1f} s "
          f"({display.env['QT_QPA_PLATFORM']}); "
          f"smoke run {total:.1f} s in all; {frames}")


def test_bundle_renders_an_mp4(bundle, portrait, tmp_path):
    import av

    from core.timebase import FPS

    seconds, rate = 2.0, 22_050
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    audio = tmp_path / "voice.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((voice * 32767).astype("<i2").tobytes())
    out = tmp_path / "talk.mp4"
    exe = _executable(bundle)
    t0 = time.monotonic()
    proc = subprocess.run([str(exe), "render", "--portrait", str(portrait), "--audio", str(audio), "--out",
                           str(out), "--synthetic-weights", "tiny", "--device", "cpu"], cwd=tmp_path,
                          env=_env(tmp_path, QT_QPA_PLATFORM="offscreen"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        assert container.streams.audio, "the mp4 has no audio track"
    assert abs(frames - seconds * FPS) <= 2, f"{frames} frames for {seconds} s of audio"
    print(f"\nbundled render: {frames} frames in {time.monotonic() - t0:.1f} s")


def test_bundle_menu_entry_installs_for_the_user(bundle, tmp_path):
    """install-desktop-entry.sh writes a valid menu entry whose Exec is this bundle's absolute path, and removes it."""
    if sys.platform != "linux":
        pytest.skip("menu entries via .desktop files are the Linux bundle's")
    data = tmp_path / "share"
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    script = bundle / "install-desktop-entry.sh"
    proc = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entry = (data / "applications" / "headcast.desktop").read_text()
    assert f'Exec="{bundle / "headcast"}" %F' in entry
    assert "Icon=headcast" in entry and "Type=Application" in entry
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "headcast.svg").is_file()
    assert (data / "icons" / "hicolor" / "256x256" / "apps" / "headcast.png").stat().st_size > 1000
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(data / "applications" / "headcast.desktop")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.run([str(script), "--remove"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not (data / "applications" / "headcast.desktop").exists()
