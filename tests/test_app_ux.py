"""The window as a new user meets it (offscreen, real widgets): it fits a laptop screen, Start is off until it can
work, nothing shown is cut off or left over from a finished run, and every setting says what it changes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QMessageBox

from app.run_control import NEEDS_PORTRAIT
from app.settings import AppSettings
from app.window_actions import RESOURCES, SHORTCUTS
from core.timebase import FPS
from tests.test_app_window import astronaut_png, dirs, drop, make_window, window  # noqa: F401

LAPTOP = (1024, 640)  # a 1366x768 screen less its panels, or a 1280x720 one


def settle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.camera.available is not None, timeout=10000)  # its warning changes the layout
    qtbot.wait(50)


def test_window_fits_a_laptop_screen_and_settings_scroll(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(renderer="full"))
    w.resize(*LAPTOP)
    settle(qtbot, w)
    assert (w.width(), w.height()) == LAPTOP, "the window's minimum size is larger than a laptop screen"
    column = w.right_scroll.widget()
    assert w.right_scroll.verticalScrollBar().maximum() > 0  # the settings scroll instead
    assert w.right_scroll.viewport().width() >= column.minimumSizeHint().width()  # and are not cut at the right
    label = w.set_box_form.labelForField(w.renderer_combo)
    assert label.width() >= label.sizeHint().width()
    assert w.preview.height() >= 200 and w.start_button.isVisible()
    w.preview_panel.show_renderer("auto: timing the full renderer on CPU")
    w.preview_panel.show_atlas(2, 6)  # a lite atlas being built: the progress is in sight, not scrolled away
    qtbot.wait(50)
    for shown in (w.renderer_label, w.atlas_bar):
        assert shown.isVisible() and not shown.visibleRegion().isEmpty(), "hidden below the fold"
        assert shown.visibleRegion().boundingRect().height() == shown.height(), "cut off"
    w.close()


def test_long_message_list_scrolls_instead_of_cutting_its_text(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(renderer="full"))
    w.resize(*LAPTOP)
    settle(qtbot, w)
    for k in range(8):
        w.show_message(f"Message {k}: " + "a long explanation that wraps over several lines " * 4, warning=True)
    qtbot.wait(50)
    assert w.message_panel.height() <= w.message_panel.MAX_HEIGHT + 60
    assert w.preview.height() >= 200
    for label in w.message_panel.scroll.widget().findChildren(QLabel):
        if label.isVisible():
            assert label.height() >= label.heightForWidth(label.width()), f"message cut off: {label.text()[:30]}"
    w.close()


def test_start_is_off_until_there_is_a_portrait(qtbot, dirs, astronaut_png):  # noqa: F811
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    assert not w.start_button.isEnabled() and not w.start_action.isEnabled()
    assert w.start_button.toolTip() == NEEDS_PORTRAIT and w.preview._placeholder == NEEDS_PORTRAIT
    drop(w.portrait_list, [astronaut_png])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=30000)
    assert w.start_button.isEnabled() and w.start_action.isEnabled() and w.start_button.toolTip() == ""
    assert w.preview._placeholder == "Press Start (F5) to go live."
    w.remove_button.click()
    assert not w.start_button.isEnabled() and not w.start_action.isEnabled()
    w.close()


def test_stopped_window_shows_no_leftover_frame_or_level(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.preview.show_frame(np.zeros((64, 64, 3), np.uint8))
    w.level_meter.set_level(-10, -5)
    w.run.show_state("starting")
    assert w.status_label.text() == "starting…" and w.start_button.text() == "Starting…"
    w.bridge.stats = lambda: {"render_fps": 24.0, "output_fps": 25.0, "latency_ms_p50": 120.0,
                              "latency_ms_p95": 140.0, "drops": 1, "repeats": 2, "device": "CPU", "state": "running"}
    w.run.update_stats()  # every term of the status line is explained where it is shown
    assert "p50/p95" in w.status_label.text() and "p95 = slowest 1 in 20" in w.status_label.toolTip()
    assert all(f"{term}:" in w.status_label.toolTip() for term in ("render", "output", "latency", "drops", "repeats"))
    del w.bridge.stats
    w.run.show_state("stopped")  # what the bridge says when a run ends (an audio file played to its end, Stop)
    w.voice.tick()
    assert w.preview.current_image() is None and w.preview._placeholder.startswith("Stopped")
    assert w.level_meter.level <= -120
    w.preview_panel.show_renderer("lite mode: the full renderer measured 2.4 s a frame")
    assert w.renderer_label.text() == "Lite mode: the full renderer measured 2.4 s a frame"
    w.close()


def test_settings_have_units_and_say_what_they_do(window):  # noqa: F811
    assert window.fps_spin.text().endswith(" fps") and window.window_spin.text().endswith(" frames")
    assert window.expr_spin.text().endswith("×") and window.head_spin.text().endswith("×")
    form = window.set_box_form
    checked = []
    for row in range(form.rowCount()):
        field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        if field is not None and field.widget() is not None:
            label = form.labelForField(field.widget())
            if label is not None:  # a setting, not a note row
                assert field.widget().toolTip(), f"the setting '{label.text()}' has no tooltip"
                checked.append(label.text())
    assert "Frame rate" in checked and "Renderer" in checked
    assert window.refresh_inputs_button.accessibleName() == "Rescan audio devices"
    window.delay_spin.setValue(-1)
    assert window.delay_spin.text() == "auto (match the avatar)"  # not "pipeline latency"
    assert f"(at {FPS} fps, {FPS} frames = 1 second)" in window.window_spin.toolTip()


def test_shortcuts_dialog_is_an_aligned_table_with_a_way_out(qtbot, window):  # noqa: F811
    window.help_action.trigger()
    box = window.shortcuts_box
    qtbot.waitUntil(box.isVisible, timeout=2000)
    text = box.text()
    assert text.startswith("<table>")
    for what, key in SHORTCUTS:
        assert f"<b>{key}</b></td><td>{what}</td>" in text
    assert box.standardButtons() == QMessageBox.StandardButton.Ok
    box.close()


def test_weights_dialog_shows_its_first_line(qtbot, dirs):  # noqa: F811
    from PySide6.QtWidgets import QWidget

    from app.first_run import WeightsDialog

    parent = QWidget()  # styled like the main window: a larger font than the dialog was sized for
    parent.setStyleSheet((RESOURCES / "styles" / "headcast.qss").read_text(encoding="utf-8"))
    qtbot.addWidget(parent)
    parent.show()
    d = WeightsDialog(parent)
    d.show()
    qtbot.waitUntil(d.isVisible, timeout=2000)
    qtbot.wait(50)
    info = d.info
    assert info.y() >= 0 and info.height() >= info.heightForWidth(info.width()), "the dialog cuts its text"
    assert d.cancel_button.isVisible() and d.cancel_button.isEnabled()
    d.reject()


def test_camera_warning_says_what_to_do_without_the_libraries_error(window, qtbot):  # noqa: F811
    """Real probe on this machine (no v4l2loopback): the message gives the fix; the backend's raw error (library
    names, device globs) is kept for the curious in the camera label's tooltip."""
    qtbot.waitUntil(lambda: window.camera.available is not None, timeout=10000)
    if window.camera.available:
        pytest.skip("this machine has a virtual camera")
    shown = [m for m in window.messages if m.startswith("Virtual camera unavailable")]
    assert len(shown) == 1 and "pyvirtualcam" not in shown[0] and "backend" not in shown[0]
    assert "(" in window.camera_label.toolTip()  # the full probe text, raw error included


def test_tab_goes_from_control_to_control(window):  # noqa: F811
    """Every Tab stop is a control a user can operate (the scrolling containers are not stops of their own)."""
    from PySide6.QtWidgets import QAbstractScrollArea, QListWidget

    x, stops = window.portrait_list, []
    for _ in range(300):
        x = x.nextInFocusChain()
        if x is window.portrait_list:
            break
        if x.focusPolicy() & Qt.FocusPolicy.TabFocus and x.isVisible() and x.isEnabled() and x.focusProxy() is None:
            stops.append(x)
    containers = [x for x in stops if isinstance(x, QAbstractScrollArea) and not isinstance(x, QListWidget)]
    assert containers == []
    assert window.input_combo in stops and window.renderer_combo in stops and window.add_button in stops


def test_delayed_voice_controls_are_off_when_they_cannot_work(qtbot, dirs, monkeypatch):  # noqa: F811
    from app import audio_io

    monkeypatch.setattr(audio_io, "output_devices", lambda: [])
    w = make_window(qtbot, AppSettings(renderer="full", audio_output_enabled=True))
    assert not w.audio_out_check.isEnabled() and "No audio output device" in w.audio_out_check.toolTip()
    assert not w.audio_out_combo.isEnabled() and not w.delay_spin.isEnabled()
    speakers = audio_io.AudioDevice(0, "Speakers", "ALSA", 2, 48000.0)
    monkeypatch.setattr(audio_io, "output_devices", lambda: [speakers])
    w.refresh_inputs_button.click()
    w.audio_out_check.setChecked(False)
    assert w.audio_out_check.isEnabled() and not w.delay_spin.isEnabled()
    w.audio_out_check.setChecked(True)
    assert w.audio_out_combo.isEnabled() and w.delay_spin.isEnabled()
    w.close()


def test_motion_model_settings_are_off_for_the_source_that_ignores_them(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(renderer="full", motion_source="retarget"))
    model_only = (w.window_spin, w.steps_spin, w.cfg_spin)
    assert not any(c.isEnabled() for c in model_only) and not w.encoding_combo.isEnabled()
    assert w.expr_spin.isEnabled() and w.head_spin.isEnabled()  # the gains apply to every source
    w.motion_combo.setCurrentText("dit")
    assert all(c.isEnabled() for c in model_only) and not w.encoding_combo.isEnabled()
    w.motion_combo.setCurrentText("joyvasa")
    assert all(c.isEnabled() for c in model_only) and w.encoding_combo.isEnabled()
    w.close()
