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
