"""The app's sounddevice paths against a real (user-space PulseAudio) audio server, and the delay line."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from app import audio_io

SR = 16_000


# ---- delay line (pure) ----------------------------------------------------------------------------------
def test_delay_line_delays_by_exactly_the_set_samples():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(4000).astype(np.float32)
    line = audio_io.DelayLine(delay=300, capacity=8192, slack=1024)
    out = np.zeros(len(signal) + 500, np.float32)
    block = np.empty(100, np.float32)
    for k in range(0, len(out), 100):
        line.push(signal[k:k + 100] if k < len(signal) else np.zeros(100, np.float32))
        line.read(block)  # pushed and read in lock-step, like input and output callbacks
        out[k:k + 100] = block
    assert np.all(out[:300] == 0)
    np.testing.assert_array_equal(out[300:300 + len(signal)], signal)


def test_delay_line_change_and_underrun():
    line = audio_io.DelayLine(delay=100, capacity=4096, slack=4096)
    out = np.ones(50, np.float32)
    line.read(out)  # nothing queued yet: silence, nothing consumed
    assert np.all(out == 0)
    line.push(np.ones(200, np.float32))
    for _ in range(4):  # primed once delay + block are queued, then plays continuously
        line.read(out)
    assert np.all(out == 1) and line.underruns == 0
    line.read(out)  # ran dry: an underrun, then the line waits for a full delay again
    assert line.underruns == 1 and np.all(out == 0)
    line.set_delay(400)
    line.push(np.full(440, 2, np.float32))
    line.read(out)
    assert np.all(out == 0)  # 440 < 400 + 50 queued: still waiting
    line.push(np.full(10, 2, np.float32))
    line.read(out)
    assert np.all(out == 2)


def test_delay_line_drops_backlog_beyond_slack():
    line = audio_io.DelayLine(delay=100, capacity=8192, slack=200)
    line.push(np.arange(1000, dtype=np.float32) + 1)  # far more than delay + block + slack
    got = np.empty(50, np.float32)
    line.read(got)  # trimmed to delay + 50 first: the newest 150 samples remain, oldest of them is 851
    np.testing.assert_array_equal(got, np.arange(851, 901, dtype=np.float32))


def test_level_dbfs():
    assert audio_io.level_dbfs(np.zeros(10, np.float32)) == -120.0
    assert abs(audio_io.level_dbfs(np.full(100, 0.5, np.float32)) - 20 * np.log10(0.5)) < 1e-6


# ---- a real audio server in user space ------------------------------------------------------------------
@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """A private PulseAudio: null sink S, its monitor remapped as source M (the virtual microphone).

    Both are the server's defaults, so sounddevice's `pulse` device plays into S and records from M.
    """
    binary = shutil.which("pulseaudio")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("pulseaudio is not installed; CI must install it (packaging/system-deps.sh)")
        pytest.skip("pulseaudio not found: apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    runtime = tmp_path_factory.mktemp("xdg")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)}
    subprocess.run(
        [binary, "--daemonize", "--exit-idle-time=-1", "-n", "--disable-shm=true",
         "--load=module-null-sink sink_name=S rate=16000",
         "--load=module-remap-source master=S.monitor source_name=M",
         "--load=module-native-protocol-unix"],
        env=env, check=True, capture_output=True, timeout=30,
    )
    pidfile = runtime / "pulse" / "pid"
    socket = runtime / "pulse" / "native"
    for _ in range(100):
        if socket.exists() and pidfile.exists():
            break
        time.sleep(0.05)
    else:
        pytest.fail("PulseAudio did not start (no socket)")
    pid = int(pidfile.read_text().split()[0])
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["PULSE_SERVER"] = f"unix:{socket}"
    import sounddevice as sd

    sd._terminate()  # re-scan devices now that a server exists
    sd._initialize()
    try:
        yield "pulse"
    finally:
        os.kill(pid, 15)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def speech(speech_wav) -> np.ndarray:
    """The espeak-ng speech at 16 kHz (read with scipy so this test depends only on the app's own code)."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    rate, data = wavfile.read(speech_wav)
    x = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
    g = gcd(SR, rate)
    return resample_poly(x, SR // g, rate // g).astype(np.float32)


def _play(device: str, signal: np.ndarray) -> None:
    """Play mono 16 kHz audio to `device` on its own output stream (blocking)."""
    import sounddevice as sd

    pos = 0

    def callback(out, frames, t, status):
        nonlocal pos
        chunk = signal[pos:pos + frames]
        out[: len(chunk), 0] = chunk
        out[len(chunk):, 0] = 0
        pos += frames
        if pos >= len(signal) + 4 * frames:
            raise sd.CallbackStop

    with sd.OutputStream(device=device, channels=1, samplerate=SR, blocksize=512, dtype="float32",
                         callback=callback) as stream:
        while stream.active:
            time.sleep(0.02)


def _wait_for_input(blocks: list, seconds: float = 0.5) -> None:
    """PulseAudio resumes a suspended source lazily: wait until the stream really delivers audio."""
    deadline = time.monotonic() + 10
    while sum(len(b) for b in blocks) < seconds * SR:
        assert time.monotonic() < deadline, "the input stream delivered no audio within 10 s"
        time.sleep(0.02)


def _lag_and_score(recorded: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Lag (samples) of `reference` inside `recorded` and the normalised correlation at that lag."""
    from scipy.signal import correlate

    c = correlate(recorded, reference, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(c)))
    seg = recorded[lag:lag + len(reference)]
    score = float(np.dot(seg, reference) / (np.linalg.norm(seg) * np.linalg.norm(reference) + 1e-12))
    return lag, score


@pytest.mark.slow
def test_microphone_capture_through_app_path(pulse, speech):
    """Speech played into the virtual microphone arrives through the app's InputMonitor (level + taps)."""
    clip = speech[: 3 * SR].astype(np.float32)
    dev = audio_io.find_device(pulse, "input")
    assert dev is not None, [d.name for d in audio_io.input_devices()]
    blocks: list[np.ndarray] = []
    monitor = audio_io.InputMonitor(dev.index, samplerate=SR, blocksize=512)
    monitor.add_tap(lambda b: blocks.append(b.copy()))
    monitor.start()
    try:
        _wait_for_input(blocks)
        silent_level = monitor.level
        _play(pulse, clip)
        time.sleep(0.3)
        loud_peak = monitor.peak
    finally:
        monitor.close()
    recorded = np.concatenate(blocks)
    assert len(recorded) > len(clip), "the input stream delivered less audio than was played"
    lag, score = _lag_and_score(recorded, clip)
    assert score > 0.9, f"recorded audio does not match the speech (correlation {score:.3f} at lag {lag})"
    assert loud_peak > silent_level + 20, (silent_level, loud_peak)


@pytest.mark.slow
def test_delayed_output_shifts_voice_by_the_set_delay(pulse):
    """Two delayed outputs (0 ms and 400 ms) fed the same burst: the recorded copies are 400 ms apart.

    White noise rather than speech: its autocorrelation is a single spike, so the two copies separate.
    """
    clip = (0.2 * np.random.default_rng(1).standard_normal(SR // 2)).astype(np.float32)
    inp = audio_io.find_device(pulse, "input")
    out = audio_io.find_device(pulse, "output")
    blocks: list[np.ndarray] = []
    monitor = audio_io.InputMonitor(inp.index, samplerate=SR, blocksize=512)
    monitor.add_tap(lambda b: blocks.append(b.copy()))
    direct = audio_io.DelayedAudioOutput(out.index, SR, delay_ms=0)
    delayed = audio_io.DelayedAudioOutput(out.index, SR, delay_ms=400)
    assert abs(delayed.delay_ms - 400) < 0.1
    monitor.start()
    direct.start()
    delayed.start()
    try:
        _wait_for_input(blocks)
        t0 = time.monotonic()
        for k in range(0, len(clip), 512):  # real-time pace, like the microphone tap
            direct.push(clip[k:k + 512])
            delayed.push(clip[k:k + 512])
            time.sleep(max(0.0, t0 + (k + 512) / SR - time.monotonic()))
        time.sleep(1.0)
    finally:
        for s in (direct, delayed, monitor):
            s.close()
    recorded = np.concatenate(blocks)
    from scipy.signal import correlate

    c = np.abs(correlate(recorded, clip, mode="valid", method="fft"))
    lag1 = int(np.argmax(c))
    c[max(0, lag1 - 320): lag1 + 320] = 0  # mask 20 ms around the strongest copy
    lag2 = int(np.argmax(c))
    gap_ms = abs(lag2 - lag1) * 1000 / SR
    assert abs(gap_ms - 400) < 50, f"copies {gap_ms:.0f} ms apart, expected 400 ms"
    assert c[lag2] > 0.5 * np.abs(correlate(recorded, clip, mode="valid", method="fft")).max()


@pytest.mark.slow
def test_window_level_meter_follows_the_virtual_microphone(pulse, speech, qtbot, tmp_path, monkeypatch):
    """Pick the virtual microphone in the real window: its meter rises with the speech played into it."""
    from app.engine_bridge import InputChoice
    from app.main_window import MainWindow
    from app.settings import AppSettings

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow(AppSettings(camera_enabled=False, renderer="full"), synthetic="tiny")
    qtbot.addWidget(w)
    w.show()
    w.select_input(InputChoice("mic", pulse))
    assert w.voice.monitor is not None and w.voice.monitor.device_name == pulse
    assert w.settings.microphone == pulse
    blocks: list[np.ndarray] = []
    rate = int(w.voice.monitor.samplerate)
    w.voice.monitor.add_tap(lambda b: blocks.append(b.copy()))
    deadline = time.monotonic() + 10
    while sum(len(b) for b in blocks) < rate // 3:
        assert time.monotonic() < deadline, "no audio from the window's microphone stream"
        qtbot.wait(20)
    qtbot.wait(200)
    quiet = w.level_meter.level
    clip = speech[: 2 * SR]
    import threading

    player = threading.Thread(target=_play, args=(pulse, clip))
    player.start()
    levels = []
    while player.is_alive():
        qtbot.wait(50)
        levels.append(w.level_meter.level)
    player.join()
    qtbot.wait(300)
    w.close()
    assert w.voice.monitor is None, "closing the window must close the microphone stream"
    assert quiet < -60 and max(levels) > -30, (quiet, max(levels))
    from math import gcd

    from scipy.signal import resample_poly

    recorded = np.concatenate(blocks)
    g = gcd(rate, SR)
    recorded = resample_poly(recorded, SR // g, rate // g).astype(np.float32)
    lag, score = _lag_and_score(recorded, clip)
    assert score > 0.8, f"the window's microphone stream does not carry the speech ({score:.3f})"


@pytest.mark.slow
def test_engine_runs_from_the_virtual_microphone(pulse, speech, qtbot, tmp_path, monkeypatch, astronaut):
    """Start the avatar on the virtual microphone: frames are rendered at the pace of the captured audio."""
    pytest.importorskip("core.engine", reason="core.engine has not landed yet")
    import threading

    import cv2

    from app.engine_bridge import InputChoice
    from app.main_window import MainWindow
    from app.settings import AppSettings

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    png = tmp_path / "astronaut.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    # a budget too large to matter: every frame is rendered, so the count below does not depend on CPU speed
    w = MainWindow(AppSettings(camera_enabled=False, device="cpu", latency_budget_ms=10_000, renderer="full"),
                   synthetic="tiny")
    qtbot.addWidget(w)
    w.show()
    w.add_paths([png])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=20000)
    w.select_input(InputChoice("mic", pulse))
    w.start()
    qtbot.waitUntil(lambda: w.bridge.state == "running", timeout=60000)
    player = threading.Thread(target=_play, args=(pulse, speech[: 2 * SR]))
    player.start()
    levels = []
    while player.is_alive():
        qtbot.wait(50)
        levels.append(w.level_meter.level)
    player.join()
    # every frame of the 2 s of speech (50) is rendered and shown sooner or later: waited for, not timed, so a
    # machine ten times slower passes too (the budget above keeps the engine from shedding any)
    qtbot.waitUntil(lambda: w.bridge.stats()["frames_rendered"] >= 50, timeout=120_000)
    qtbot.waitUntil(lambda: w.preview.frames_shown > 10, timeout=60_000)
    stats = w.bridge.stats()
    assert stats["latency_ms"] > 0, stats
    assert max(levels) > -30  # the meter ran alongside the engine's own stream
    w.bridge.stop()
    qtbot.waitUntil(lambda: w.bridge.state == "stopped", timeout=30000)
    w.close()
