"""The app's Look panel (offscreen, tiny stand-in weights): a slider changes the preview while stopped (one
render per change, in a worker) and while running (eased in by the engine), and a portrait's look is restored
after a restart."""

from __future__ import annotations

import numpy as np
import pytest

from core.look import Look


def _window(qtbot, tmp_path, monkeypatch, png=None):
    from app.main_window import MainWindow
    from app.settings import AppSettings

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow(AppSettings(camera_enabled=False, device="cpu", renderer="full"), synthetic="tiny")
    qtbot.addWidget(w)
    w.show()
    if png is not None:
        w.add_paths([png])
        qtbot.waitUntil(lambda: len(w.library) == 1, timeout=20000)
    return w


@pytest.fixture
def png(tmp_path, astronaut):
    import cv2

    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def _face(frame: np.ndarray, window) -> np.ndarray:
    engine_portrait = window.bridge.session.pipeline(window.bridge.session_config(window.settings))[0].prepare(
        str(window.current_portrait().path))
    y0, y1, x0, x1 = engine_portrait.roi
    return frame[y0:y1, x0:x1].astype(np.int16)


def test_panel_lists_every_control_with_its_range_and_resets(qtbot, tmp_path, monkeypatch, png):
    from core.look import ALL_CONTROLS

    w = _window(qtbot, tmp_path, monkeypatch)
    panel = w.look_panel
    assert set(panel.rows) == {c.name for c in ALL_CONTROLS} - {"gaze_lock"}
    seen = []
    panel.look_changed.connect(seen.append)
    panel.rows["smile"].slider.setValue(panel.rows["smile"].slider.maximum())  # as a drag to the end would
    assert seen[-1].smile == pytest.approx(1.3) and panel.rows["smile"].value_label.text() == "1.30"
    panel.rows["yaw"].slider.setValue(0)
    assert seen[-1].yaw == pytest.approx(-25.0) and panel.rows["yaw"].value_label.text() == "-25 deg"
    panel.rows["smile"].reset_button.click()
    assert seen[-1] == Look(yaw=-25.0)
    panel.apply_preset("gaze-lock")
    assert panel.gaze_lock_check.isChecked() and panel.preset_combo.currentText() == "gaze-lock"
    panel.reset_all_button.click()
    assert seen[-1] == Look() and panel.preset_combo.currentText() == "Neutral"
    w.close()


def test_look_previews_when_stopped_changes_live_and_is_restored(qtbot, tmp_path, monkeypatch, png):
    from app.engine_bridge import InputChoice

    w = _window(qtbot, tmp_path, monkeypatch, png)
    assert w.bridge.state == "stopped"

    # stopped: each change renders one still frame in a worker and shows it
    w.look_panel.set_value("yaw", 20.0)
    qtbot.waitUntil(lambda: w.bridge.still.shown == 1, timeout=60000)
    qtbot.waitUntil(lambda: w.preview.frames_shown >= 1, timeout=10000)
    turned = w.preview._frame.copy()  # what the preview widget shows
    w.look_panel.set_value("yaw", 0.0)
    qtbot.waitUntil(lambda: w.bridge.still.shown == 2 and w.preview.frames_shown >= 2, timeout=60000)
    straight = w.preview._frame.copy()
    assert np.abs(_face(turned, w) - _face(straight, w)).mean() > 0.5

    # a burst of changes (a dragged slider) renders what it ends on, not a backlog
    before = w.bridge.still.shown
    for value in (0.2, 0.4, 0.6, 0.8, 1.0):
        w.look_panel.set_value("smile", value)
    qtbot.waitUntil(lambda: not w.bridge.still.busy, timeout=60000)
    assert 1 <= w.bridge.still.shown - before <= 2

    # running: a change reaches the engine's renderer (eased in there; the stopped preview is not used)
    w.look_panel.set_value("head_motion", 0.0)  # motion gains 0: the face holds still, so a look change shows
    w.look_panel.set_value("expression_motion", 0.0)
    qtbot.waitUntil(lambda: not w.bridge.still.busy, timeout=60000)
    w.select_input(InputChoice("generator"))
    w.start()
    qtbot.waitUntil(lambda: w.bridge.state == "running", timeout=60000)
    renderer = w.bridge.session.engine.renderer
    assert renderer.look.look.smile == pytest.approx(1.0)  # the portrait's look from the first frame

    def next_frame():
        shown = w.preview.frames_shown
        qtbot.waitUntil(lambda: w.preview.frames_shown > shown, timeout=30000)
        return w.preview._frame.copy()

    still = [next_frame() for _ in range(4)][1:]
    assert all(np.abs(still[0].astype(int) - f).max() <= 1 for f in still[1:]), [
        np.abs(still[0].astype(int) - f).max() for f in still[1:]]  # motion at gain 0: the same frame
    previews = w.bridge.still.shown
    w.look_panel.set_value("yaw", 20.0)
    assert renderer.look.look.yaw == 20.0
    shown = w.preview.frames_shown
    qtbot.waitUntil(lambda: w.preview.frames_shown > shown + 12, timeout=30000)  # past the 8-frame easing
    assert np.abs(_face(w.preview._frame, w) - _face(still[0], w)).mean() > 0.5
    assert w.bridge.still.shown == previews
    w.look_panel.set_value("yaw", 0.0)
    w.look_panel.set_value("eyebrow", 10.0)
    w.start_action.trigger()
    qtbot.waitUntil(lambda: w.bridge.state == "stopped", timeout=30000)
    w.close()

    # restart: the portrait comes back with its look
    again = _window(qtbot, tmp_path, monkeypatch)
    assert len(again.library) == 1
    restored = Look(smile=1.0, eyebrow=10.0, head_motion=0.0, expression_motion=0.0)
    assert again.look_panel.look() == restored
    assert again.bridge.look == restored  # what the next Start begins with
    again.close()


def test_library_keeps_the_look_of_a_reanalysed_portrait(tmp_path):
    from app.library import Portrait, PortraitLibrary

    lib = PortraitLibrary(tmp_path)
    (tmp_path / "c.png").write_bytes(b"x")
    (tmp_path / "t.png").write_bytes(b"x")
    p = Portrait(str(tmp_path / "a.png"), "d", str(tmp_path / "c.png"), str(tmp_path / "t.png"), 10, 10)
    lib.add(p)
    lib.set_look(0, Look(smile=0.5, eye_ratio=0.3))
    lib.add(p)  # re-analysed, e.g. another face chosen
    assert PortraitLibrary(tmp_path).look_of(0) == Look(smile=0.5, eye_ratio=0.3)
    raw = (tmp_path / "library.json").read_text()
    assert '"smile": 0.5' in raw
