"""`python -m core live` and Ctrl-C in `python -m core render`, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import kill_after

REPO = Path(__file__).resolve().parents[1]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def portrait_png(astronaut, tmp_path_factory) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def core(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *argv], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def test_argument_errors_are_fast_and_import_no_torch(tmp_path, speech_wav):
    code = ("import sys; from core.__main__ import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported before the arguments were checked'; sys.exit(rc)")
    cases = [
        (["--portrait", str(tmp_path / "none.png")], "portrait not found"),
        (["--portrait", str(speech_wav), "--input", str(tmp_path / "none.wav")], "no such audio file"),
        (["--portrait", str(speech_wav), "--input", "test", "--seconds", "0"], "--seconds must be positive"),
        (["--portrait", str(speech_wav), "--input", "test", "--stats-json", str(tmp_path / "no" / "s.json")],
         "folder does not exist"),
        (["--portrait", str(speech_wav), "--input", "test", "--stats-json", str(tmp_path)], "is a folder"),
        (["--portrait", str(speech_wav), "--input", "test", "--stats-json", str(speech_wav)], "must end in .json"),
        (["--portrait", str(speech_wav), "--input", "test", "--face", "0"], "--face counts from 1"),
    ]
    for argv, message in cases:
        r = subprocess.run([sys.executable, "-c", code, "live", *argv], cwd=REPO, env=env(), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_live_tiny_from_a_speech_file_writes_honest_stats(tmp_path, portrait_png, speech_wav):
    out = tmp_path / "s.json"
    r = core("live", "--portrait", str(portrait_png), "--input", str(speech_wav), "--seconds", "6",
             "--synthetic-weights", "tiny", "--device", "cpu", "--renderer", "full", "--stats-json", str(out),
             "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    for key in ("output_fps", "render_fps", "drops", "repeats", "latency_ms_p50", "latency_ms_p95",
                "latency_ms_max", "latency_ms_per_second", "latency_budget_ms", "state"):
        assert key in s, key
    assert 5.5 <= s["seconds"] <= 7.5 and len(s["latency_ms_per_second"]) >= 6
    assert 20 <= s["output_fps"] <= 26  # the pacer emits 25 fps whatever the renderer manages (repeats count)
    assert s["frames_emitted"] > 0 and s["latency_ms_p50"] > 0
    # the bound the engine promises: budget + one batch of renders (+ two ticks of pacing)
    bound = s["latency_budget_ms"] + 8 * s["stage_ms"]["render"] + 80
    assert s["latency_ms_max"] <= bound, (s["latency_ms_max"], bound)
    assert s["drops"] == s["drops_before_render"] + s["drops_after_render"]
    assert ("cannot keep up" in s["state"]) == (not s["keeping_up"])
    assert "latency p50" in r.stderr


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_ctrl_c_in_render_exits_130_and_leaves_nothing(tmp_path, portrait_png, speech_wav):
    out = tmp_path / "out" / "clip.mp4"
    p = subprocess.Popen([sys.executable, "-m", "core", "render", "--portrait", str(portrait_png), "--audio",
                          str(speech_wav), "--out", str(out), "--synthetic-weights", "tiny", "--device", "cpu"],
                         cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.parent.is_dir() and any(out.parent.iterdir()) or p.poll() is not None, 180)
        time.sleep(1.0)  # rendering is under way
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "terminate called" not in err
    assert not out.exists() and list(out.parent.iterdir()) == []  # no partial file either


@pytest.mark.slow
def test_ctrl_c_in_live_exits_130_with_whole_stats(tmp_path, portrait_png):
    stats = tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "core", "live", "--portrait", str(portrait_png), "--input", "test",
                          "--synthetic-weights", "tiny", "--device", "cpu", "--stats-json", str(stats)],
                         cwd=REPO, env={**env(), "HEADCAST_CACHE_DIR": str(tmp_path / "cache")},  # nothing remembered
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        lines = []
        # a status line with frames going out: the run is live
        while not any("latency p50" in line and "output  0.0" not in line for line in lines):
            line = p.stderr.readline()
            assert line or p.poll() is None, "".join(lines)
            lines.append(line)
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=180)
        err = "".join(lines) + err
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    s = json.loads(stats.read_text())
    assert s["interrupted"] is True and s["frames_emitted"] > 0
    # no --renderer: live defaults to auto, which timed the full renderer here and says what it chose and why
    assert "; full renderer: measured" in err or "; lite mode: the full renderer measured" in err, err[-2000:]
    assert "renderer: auto: timing the full renderer on CPU once" in err  # said before the wait


@pytest.mark.slow
def test_second_ctrl_c_quits_at_once_and_keeps_the_stats(tmp_path, portrait_png):
    """Official-size stand-ins on this CPU take seconds a frame: the first Ctrl-C writes the stats, then waits for
    the frame on the device; a second one quits at once (exit 130, one line, no traceback, no torch abort)."""
    stats = tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "core", "live", "--portrait", str(portrait_png), "--input", "test",
                          "--synthetic-weights", "full", "--device", "cpu", "--renderer", "full", "--quiet",
                          "--stats-json", str(stats)],
                         cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read_until(text: str) -> None:
        while not any(text in line for line in lines):
            line = p.stderr.readline()
            assert line or p.poll() is None, "".join(lines)
            lines.append(line)

    try:
        with kill_after(p, 1200):  # a Ctrl-C that is never answered fails the test instead of hanging the suite
            read_until("Ctrl-C stops")  # models loaded, the engine started: its first frame is rendering
            time.sleep(1.0)
            p.send_signal(signal.SIGINT)
            read_until("Ctrl-C again quits at once")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, rest = p.communicate(timeout=120)
        waited = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(lines) + rest
    assert p.returncode == 130, err[-2000:]
    assert "interrupted again: quit without waiting for the frame being rendered" in err, err[-2000:]
    assert waited < 5, f"the second Ctrl-C took {waited:.1f} s"  # a frame here takes ~10 s or more
    assert "Traceback" not in err and "terminate called" not in err
    s = json.loads(stats.read_text())
    assert s["interrupted"] is True and s["renderer"] == "full"


@pytest.mark.slow
def test_live_official_size_on_cpu_stays_bounded_and_says_it_cannot_keep_up(tmp_path, portrait_png, speech_wav):
    """Official-size stand-in networks on this CPU render far below 25 fps: frames are few, but recent."""
    out = tmp_path / "s.json"
    r = core("live", "--portrait", str(portrait_png), "--input", str(speech_wav), "--loop", "--seconds", "20",
             "--synthetic-weights", "full", "--device", "cpu", "--renderer", "full", "--stats-json", str(out),
             "--quiet", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    assert not s["keeping_up"] and "cannot keep up" in s["state"] and "of 25 fps" in s["state"]
    if s["frames_emitted"]:  # each frame: at most the budget plus the render of one frame late
        assert s["latency_ms_max"] <= s["latency_budget_ms"] + 1.5 * s["stage_ms"]["render"] + 500, s


@pytest.mark.slow
def test_a_photo_without_that_face_is_named_and_exits_2(tmp_path, portrait_png):
    import cv2

    blank = tmp_path / "gradient.png"
    cv2.imwrite(str(blank), np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1)))
    common = ["--input", "test", "--synthetic-weights", "tiny", "--device", "cpu", "--renderer", "full",
              "--seconds", "1"]
    r = core("live", "--portrait", str(blank), *common)
    assert r.returncode == 2 and "gradient.png" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = core("live", "--portrait", str(portrait_png), "--face", "3", *common)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "face" in r.stderr.lower(), r.stderr[-2000:]


def _median(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else float("nan")


@pytest.mark.slow
def test_latency_comes_back_after_a_cpu_hog(tmp_path, portrait_png, speech_wav):
    """Issue 21's done-when: a 55 s live run with every core taken for 10 s in the middle; the median latency
    of the last 15 s is within 40 ms of the first 10 s (the run compared with itself, so the verdict does not
    depend on how fast this machine is). Lite mode keeps the per-frame cost far below the period, so the hog
    is the only hiccup; four 0.3 s freezes of the process during it make sure there are hiccups on any machine
    (on main each one stayed in the latency for the rest of the run)."""
    out = tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "core", "live", "--portrait", str(portrait_png), "--input",
                          str(speech_wav), "--loop", "--seconds", "55", "--synthetic-weights", "tiny", "--device",
                          "cpu", "--renderer", "lite", "--atlas", "2x1", "--quiet", "--stats-json", str(out)],
                         cwd=REPO, env={**env(), "HEADCAST_CACHE_DIR": str(tmp_path / "cache")},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    hogs: list[subprocess.Popen] = []
    try:
        while not any("Ctrl-C stops" in line for line in lines):  # streaming from here on
            line = p.stderr.readline()
            assert line or p.poll() is None, "".join(lines)
            lines.append(line)
        time.sleep(22.0)
        hog = "import time\nend = time.monotonic() + 10\nwhile time.monotonic() < end: pass\n"
        hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2 * (os.cpu_count() or 2))]
        for _ in range(4):  # and now and then no CPU at all for 0.3 s: hiccups however fast this machine is
            time.sleep(1.7)
            p.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            p.send_signal(signal.SIGCONT)
        for h in hogs:
            h.wait(timeout=60)
        rest = p.communicate(timeout=180)[1]
    finally:
        for proc in [p, *hogs]:
            if proc.poll() is None:
                proc.kill()
    err = "".join(lines) + rest
    assert p.returncode == 0, err[-3000:]
    s = json.loads(out.read_text())
    series = s["latency_ms_per_second"]
    assert len(series) >= 54, series
    first, last = _median(series[:10]), _median(series[-16:-1])  # the last entry may be a partial second
    print(f"latency first 10 s {first:.1f} ms, last 15 s {last:.1f} ms, repeats {s['repeats']}, "
          f"catch-up drops {s['catch_up_drops']}, drops {s['drops']}; per second {series}")
    # the done-when allows 40 ms; latency moves in 40 ms steps, so a period left over (CI, stop 27) passed
    # or failed on rounding. The pacer's own target (within 20 ms) is what is asserted.
    assert abs(last - first) <= 20, (first, last, s["repeats"], s["catch_up_drops"], series)
    assert s["drops"] >= s["catch_up_drops"] > 0  # the freezes' backlog was shed, and counted


# a process that fails with "models loaded" as soon as anything builds the networks: checks that must come first
NO_MODELS = ("import sys, types\n"
             "p = types.ModuleType('core.pipeline')  # stands in for the real one, which imports torch\n"
             "sys.modules['core.pipeline'] = p\n"
             "def refuse(*a, **k):\n    raise SystemExit('models loaded before the check')\n"
             "p.build_pipeline = refuse\n"
             "from core.__main__ import main\nsys.exit(main(sys.argv[1:]))\n")


def _no_virtual_camera() -> bool:
    try:
        import pyvirtualcam

        pyvirtualcam.Camera(width=64, height=64, fps=25).close()
    except Exception:
        return True
    return False


@pytest.mark.skipif(not _no_virtual_camera(), reason="a virtual camera exists here")
def test_live_camera_without_a_device_fails_at_once_with_the_fix(portrait_png):
    """Issue 21: `live --camera` without a virtual camera ran on with no output at all and exit 0."""
    r = subprocess.run([sys.executable, "-c", NO_MODELS, "live", "--portrait", str(portrait_png), "--input",
                        "test", "--camera", "--synthetic-weights", "tiny"], cwd=REPO, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --camera: no virtual camera could be opened"), r.stderr
    assert "--camera optional" in lines[0] and "preview" not in r.stderr
    if sys.platform.startswith("linux"):
        assert "modprobe v4l2loopback" in lines[0]


@pytest.mark.slow
@pytest.mark.skipif(not _no_virtual_camera(), reason="a virtual camera exists here")
def test_live_camera_optional_runs_without_one_and_says_so_once(tmp_path, portrait_png):
    out = tmp_path / "s.json"
    r = core("live", "--portrait", str(portrait_png), "--input", "test", "--camera", "optional", "--seconds", "2",
             "--synthetic-weights", "tiny", "--device", "cpu", "--renderer", "full", "--quiet", "--stats-json",
             str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("no virtual camera could be opened") == 1, r.stderr
    assert "preview" not in r.stderr and "camera No virtual" not in r.stderr  # nothing only the app has
    assert "camera off," in r.stderr  # the summary line says it plainly
    assert json.loads(out.read_text())["camera_state"] == "off"


@pytest.mark.slow
def test_live_says_stopping_before_the_report(tmp_path, portrait_png):
    """Issue 21: the "stopping" line came after "wrote stats", as if the report were the last word."""
    stats = tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "core", "live", "--portrait", str(portrait_png), "--input", "test",
                          "--synthetic-weights", "tiny", "--device", "cpu", "--renderer", "full", "--quiet",
                          "--stats-json", str(stats)], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        while not any("Ctrl-C stops" in line for line in lines):
            line = p.stderr.readline()
            assert line or p.poll() is None, "".join(lines)
            lines.append(line)
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        err = "".join(lines) + p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert 0 <= err.index("stopping:") < err.index(f"wrote {stats}"), err[-2000:]
