"""The app's live run as a user sees it: a file input that ends says so, the meter follows file and test-signal
input, and the status line carries the engine's measured figures."""

from __future__ import annotations

import numpy as np
import pytest

from app.status_line import status_text
from core.timebase import SAMPLE_RATE


def test_status_text_shows_measured_figures_and_the_cannot_keep_up_state():
    st = {"render_fps": 4.2, "output_fps": 25.0, "latency_ms_p50": 512.0, "latency_ms_p95": 640.0, "drops": 31,
          "repeats": 30, "device": "CPU (float32)", "keeping_up": False,
          "state": "cannot keep up: rendering 4.2 of 25 fps on CPU, so frames are skipped to stay within 600 ms; "
                   "try Lite mode, a smaller size or a GPU"}
    text = status_text(st)
    assert "render 4.2 fps" in text and "output 25.0 fps" in text and "512/640 ms" in text
    assert "drops 31" in text and "repeats 30" in text and "cannot keep up" in text and "GPU" in text
    st.update(keeping_up=True)
    assert status_text(st).endswith("CPU (float32)")
    st.update(latency_ms_p50=0.0, latency_ms_p95=0.0)  # no new frame in the stats window: no made-up 0 ms
    assert "latency —" in status_text(st) and " 0/0 ms" not in status_text(st)
    st.update(catch_up_drops=7)  # of the 31: dropped to bring latency back down, said apart
    assert "drops 31 (7 to catch up)" in status_text(st)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, astronaut):
    import cv2

    from app.main_window import MainWindow
    from app.settings import AppSettings

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    png = tmp_path / "astronaut.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    w = MainWindow(AppSettings(camera_enabled=False, device="cpu", renderer="full"), synthetic="tiny")
    qtbot.addWidget(w)
    w.show()
    w.add_paths([png])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=20000)
    yield w
    w.close()  # stops a run in progress and waits for its render (closeEvent -> bridge.shutdown)
    assert w.bridge.session.engine is None


@pytest.mark.slow
def test_a_file_input_plays_to_its_end_then_says_so(qtbot, window, tmp_path):
    from scipy.io import wavfile

    from app.engine_bridge import InputChoice

    wav = tmp_path / "hum.wav"
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    wavfile.write(wav, SAMPLE_RATE, (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    w = window
    w.select_input(InputChoice("file", str(wav)))
    levels = []
    w.start()
    qtbot.waitUntil(lambda: w.bridge.state == "running", timeout=60000)
    while w.bridge.state == "running":
        qtbot.wait(50)
        levels.append(w.level_meter.level)
        assert len(levels) < 1200, "the file never ended"
    qtbot.waitUntil(lambda: w.bridge.state == "stopped", timeout=30000)
    assert any("played to its end" in m and "hum.wav" in m for m in w.messages)
    assert max(levels) > -20  # the meter showed the file's level (-8 dBFS) while it played
    assert w.start_button.text() == "Start"


@pytest.mark.slow
def test_the_meter_follows_the_test_signal(qtbot, window):
    from app.engine_bridge import InputChoice

    w = window
    w.select_input(InputChoice("generator"))
    w.start()
    qtbot.waitUntil(lambda: w.bridge.state == "running", timeout=60000)
    levels = []
    for _ in range(40):
        qtbot.wait(50)
        levels.append(w.level_meter.level)
    qtbot.waitUntil(lambda: "fps" in w.status_label.text(), timeout=10000)
    assert max(levels) > -40 and min(levels) < max(levels)  # syllables and pauses
    w.start_action.trigger()  # F5 toggles: stop
    qtbot.waitUntil(lambda: w.bridge.state == "stopped", timeout=30000)
