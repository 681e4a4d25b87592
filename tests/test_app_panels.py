"""The window's panels on their own (issue 23: each panel testable without the window)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from app.settings import AppSettings  # noqa: E402
from app.settings_panel import RESOLUTIONS, SettingsPanel  # noqa: E402


def test_settings_panel_shows_and_writes_back_settings(qtbot):
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    edits = []
    panel.changed.connect(lambda: edits.append(1))
    shown = AppSettings(fps=20, motion_source="joyvasa", output_width=800, output_height=600, latency_budget_ms=450)
    panel.restore(shown)
    assert not edits, "showing settings is not an edit"
    assert panel.resolution_combo.currentData() == "800x600"  # a size not in the list is added, not lost
    assert panel.window_spin.isEnabled() and panel.encoding_combo.isEnabled()  # JoyVASA's controls are live
    panel.fps_spin.setValue(12)
    panel.resolution_combo.setCurrentIndex(panel.resolution_combo.findData("{}x{}".format(*RESOLUTIONS[0])))
    panel.motion_combo.setCurrentText("retarget")
    assert len(edits) == 3
    assert not panel.window_spin.isEnabled() and not panel.encoding_combo.isEnabled()  # retarget ignores them
    written = AppSettings()
    panel.read_into(written)
    assert (written.fps, written.output_width, written.output_height) == (12, *RESOLUTIONS[0])
    assert written.motion_source == "retarget" and written.latency_budget_ms == 450


def test_library_panel_shows_the_crop_and_offers_a_face_only_when_there_are_several(qtbot, tmp_path, astronaut):
    from types import SimpleNamespace

    import cv2
    from PySide6.QtGui import QIcon

    from app.library_panel import LibraryPanel

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), astronaut[:256, :256])
    panel = LibraryPanel(QIcon(), QIcon())
    qtbot.addWidget(panel)
    panel.show_portrait(SimpleNamespace(crop=str(crop), faces=2, face=1))
    assert not panel.crop_label.pixmap().isNull() and not panel.face_combo.isHidden()
    assert panel.face_combo.count() == 2 and panel.face_combo.currentIndex() == 1
    panel.show_portrait(SimpleNamespace(crop=str(crop), faces=1, face=0))
    assert panel.face_combo.isHidden()
    panel.show_portrait(None)
    assert panel.crop_label.pixmap().isNull() and panel.crop_label.text() == "No portrait"


def test_preview_panel_says_which_renderer_runs_and_how_far_the_atlas_is(qtbot):
    from PySide6.QtGui import QIcon

    from app.preview_panel import PreviewPanel

    panel = PreviewPanel("tiny", QIcon(), QIcon())
    qtbot.addWidget(panel)
    assert "synthetic 'tiny'" in panel.synthetic_label.text() and not panel.synthetic_label.isHidden()
    assert panel.renderer_label.isHidden() and panel.atlas_bar.isHidden()
    panel.show_atlas(1, 2)
    assert not panel.atlas_bar.isHidden() and "(1/2 frames)" in panel.renderer_label.text()
    panel.show_atlas(2, 2)
    assert panel.atlas_bar.isHidden() and "atlas is ready (2 frames)" in panel.renderer_label.text()
    panel.show_renderer("lite mode: the full renderer measured 0.13 fps")
    assert panel.renderer_label.text().startswith("Lite mode: the full") and panel.atlas_bar.isHidden()


def test_input_and_output_panels_list_devices_and_say_when_there_are_none(qtbot):
    from types import SimpleNamespace

    from PySide6.QtGui import QIcon

    from app.io_panels import NO_INPUT, InputPanel, OutputsPanel
    from core.live_input import InputChoice

    inputs = InputPanel(QIcon())
    qtbot.addWidget(inputs)
    usb = SimpleNamespace(label="USB mic (2 ch)", name="USB mic")
    assert inputs.fill([usb], has_default=True, wanted="USB mic")
    assert inputs.input_combo.currentData() == InputChoice("mic", "USB mic")
    assert inputs.fill([], has_default=False, wanted=None) is False
    assert inputs.input_combo.currentData().kind == NO_INPUT  # said, never a Start that fails with "device -1"
    inputs.select(InputChoice("file", "/x/talk.wav"))
    assert inputs.input_combo.currentText() == "File: talk.wav"
    outputs = OutputsPanel()
    qtbot.addWidget(outputs)
    outputs.fill([], wanted=None)
    assert not outputs.audio_out_check.isEnabled() and "No audio output" in outputs.audio_out_check.toolTip()
    outputs.fill([SimpleNamespace(label="Speakers", name="spk")], wanted="spk")
    outputs.audio_out_check.setChecked(True)
    outputs.update_delay_enabled()
    assert outputs.audio_out_combo.isEnabled() and outputs.delay_spin.isEnabled()


# ---- the owners the window wires (issue 23 step 4): each works without a MainWindow ------------------------------
def test_message_log_says_a_keyed_message_once_and_flashes_its_first_line(qtbot):
    from PySide6.QtWidgets import QStatusBar

    from app.camera_status import UNAVAILABLE
    from app.messages import MessageLog
    from app.widgets import MessagePanel

    panel, bar = MessagePanel(), QStatusBar()
    qtbot.addWidget(panel)
    qtbot.addWidget(bar)
    log = MessageLog(panel, bar)
    log.show("Disk full.\nFree some space.", warning=True)
    assert bar.currentMessage() == "Disk full." and panel.texts() == ["Disk full.\nFree some space."]
    for _ in range(3):  # every Start would say it again: the session's camera warning is shown once
        log.from_session(f"{UNAVAILABLE}; the run goes on without it. No backend.")
    log.show("No microphone.", key="no-mic")
    log.show("No microphone.", key="no-mic")
    assert log.texts == ["Disk full.\nFree some space.", f"{UNAVAILABLE}; the run goes on without it. No backend.",
                         "No microphone."]


def test_camera_status_shows_the_probe_and_returns_to_it_after_a_run(qtbot, monkeypatch):
    from PySide6.QtWidgets import QCheckBox, QLabel

    import app.camera_status as camera_status
    from app.settings import AppSettings
    from app.tasks import TaskRunner

    monkeypatch.setattr(camera_status, "probe_camera", lambda: (False, "Install v4l2loopback.\n(no device)"))
    switch, label, tasks = QCheckBox(), QLabel(), TaskRunner()
    qtbot.addWidget(switch)
    qtbot.addWidget(label)
    said, wanted, saved, running = [], [], [], [False]
    status = camera_status.CameraStatus(switch, label, tasks, AppSettings(camera_enabled=True), lambda: running[0],
                                        wanted.append, lambda text, **kw: said.append(text), lambda: saved.append(1))
    status.restore()
    assert switch.isChecked() and wanted == [True] and status.available is None
    status.check()
    qtbot.waitUntil(lambda: status.available is not None, timeout=10000)
    assert status.available is False and label.text() == "Install v4l2loopback."
    assert label.toolTip() == "Install v4l2loopback.\n(no device)"  # the backend's own words stay at hand
    assert said == ["Virtual camera unavailable; the preview still works. Install v4l2loopback."]
    running[0] = True
    status.show("obs: /dev/video2")  # a run says which camera it writes to
    status.show("idle")  # the run ended: back to what the probe found
    assert label.text() == "Install v4l2loopback."
    switch.setChecked(False)
    assert label.text() == "off" and wanted[-1] is False and saved and not status.settings.camera_enabled
    tasks.shutdown()


def test_run_control_offers_start_only_when_it_can_work_and_follows_the_bridge(qtbot):
    from types import SimpleNamespace

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QLabel, QMainWindow

    from app.preview_panel import PreviewPanel
    from app.run_control import NEEDS_PORTRAIT, RunControl
    from app.settings import AppSettings
    from app.window_actions import WindowActions
    from core.live_input import InputChoice

    calls = []
    bridge = SimpleNamespace(state="stopped", stats=lambda: None, stop=lambda: calls.append("stop"),
                             start=lambda *a, **kw: calls.append(("start", a[1], kw["camera"], kw["muted"])),
                             set_muted=lambda m: calls.append(("muted", m)))
    window, centre, status = QMainWindow(), PreviewPanel(None, QIcon(), QIcon()), QLabel()
    qtbot.addWidget(window)
    qtbot.addWidget(centre)
    portrait = [None]
    run = RunControl(bridge, centre, WindowActions(window), status, AppSettings(), portrait=lambda: portrait[0],
                     choice=lambda: InputChoice("generator", None), camera_on=lambda: False,
                     say=lambda text, **kw: calls.append(text), flash=lambda *a: None)
    run.update_start()
    assert not centre.start_button.isEnabled() and centre.start_button.toolTip() == NEEDS_PORTRAIT
    portrait[0] = SimpleNamespace(path="/p/ada.png", face=0)
    run.update_start()
    assert centre.start_button.isEnabled() and run.actions.start.isEnabled()
    centre.mute_button.setChecked(True)  # the button and the menu action stay one switch
    assert run.actions.mute.isChecked() and calls == [("muted", True)]
    centre.start_button.click()
    assert calls[-1] == ("start", "/p/ada.png", False, True)
    bridge.state = "running"
    run.show_state("running")
    assert centre.start_button.text() == "Stop" and run.actions.start.text() == "Stop"
    run.toggle()
    assert calls[-1] == "stop"
    bridge.state = "stopped"
    run.show_state("stopped")
    assert status.text() == "stopped" and centre.start_button.text() == "Start"


def test_window_actions_carry_the_keys_the_help_lists(qtbot):
    from PySide6.QtWidgets import QMainWindow

    from app.window_actions import SHORTCUTS, WindowActions, shortcuts_dialog

    window = QMainWindow()
    qtbot.addWidget(window)
    acts = WindowActions(window)
    keys = {a.shortcut().toString() for a in (acts.start, acts.mute, acts.next, acts.prev, acts.add, acts.help)}
    assert keys == {key for _, key in SHORTCUTS}
    assert [m.text() for m in window.menuBar().actions()] == ["&File", "&Avatar", "&Help"]
    assert acts.quit in window.menuBar().actions()[0].menu().actions()
    box = shortcuts_dialog(window)
    assert all(f"<b>{key}</b>" in box.text() for _, key in SHORTCUTS)
