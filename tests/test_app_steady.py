"""Settings and portraits that stay put (issue 21): the mouse wheel scrolls the settings column instead of
changing the control under it, the frequent settings show without scrolling, a portrait added while live does
not go on the call by itself, and every change is on disk at once (a crash or a kill loses nothing)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from app.settings import AppSettings, load_settings
from app.settings_panel import RESOLUTIONS

from .test_app_window import dirs, drop, make_window, needs  # noqa: F401 (fixture)

NOTCH = 120  # one wheel notch, in eighths of a degree


def wheel(widget, notches: int = -1) -> QWheelEvent:
    """Turn the wheel over the middle of `widget` (negative: towards the user, i.e. scroll down), delivered as
    Qt delivers a real one (QApplication.notify: filters, then parents when ignored)."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, notches * NOTCH), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event


@pytest.fixture
def short_window(qtbot, dirs):  # noqa: F811
    """A window on a laptop-sized screen: the settings column scrolls."""
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.resize(1180, 560)
    qtbot.waitExposed(w)
    QApplication.processEvents()
    yield w
    w.close()


def test_the_wheel_over_an_unfocused_drop_down_scrolls_the_column_and_changes_nothing(short_window):
    w = short_window
    bar = w.right_scroll.verticalScrollBar()
    assert bar.maximum() > 0, "the column must scroll for this test"
    controls = [w.resolution_combo, w.renderer_combo, w.device_combo, w.fps_spin, w.expr_spin, w.budget_spin]
    before = [(c.currentIndex() if hasattr(c, "currentIndex") else c.value()) for c in controls]
    saved = load_settings()[0]
    for control in controls:
        w.setFocus()
        assert not control.hasFocus()
        start = bar.value()
        wheel(control, -1)
        assert not control.hasFocus()  # the wheel does not focus it either
        assert bar.value() > start or bar.value() == bar.maximum(), control.accessibleName()
        bar.setValue(0)
    after = [(c.currentIndex() if hasattr(c, "currentIndex") else c.value()) for c in controls]
    assert after == before
    assert w.settings.output_width == 512 and load_settings()[0] == saved


def test_the_wheel_changes_a_control_once_the_user_chose_it(short_window, qtbot):
    w = short_window
    combo = w.resolution_combo
    combo.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(combo.hasFocus, timeout=2000)
    start = combo.currentIndex()
    wheel(combo, -1)  # down the list: the next, larger size
    assert combo.currentIndex() == start + 1
    assert (w.settings.output_width, w.settings.output_height) == RESOLUTIONS[start + 1]


def test_camera_sizes_are_listed_smallest_first():
    areas = [wd * ht for wd, ht in RESOLUTIONS]
    assert areas == sorted(areas) and (256, 256) in RESOLUTIONS and (512, 512) in RESOLUTIONS


def test_the_renderer_and_the_frequent_settings_show_without_scrolling(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.resize(1180, 720)  # a 1366x768 laptop's usable screen
    qtbot.waitExposed(w)
    QApplication.processEvents()
    viewport = w.right_scroll.viewport()
    assert w.right_scroll.verticalScrollBar().value() == 0
    for control in (w.renderer_combo, w.resolution_combo, w.fps_spin, w.device_combo):
        bottom = control.mapTo(viewport, QPoint(0, control.height())).y()
        assert 0 < bottom <= viewport.height(), f"{control.toolTip()[:30]!r} is below the fold"
    form = w.set_box_form
    assert form.labelForField(w.renderer_combo).text() == "Renderer"
    rows = [form.getWidgetPosition(c)[0] for c in (w.renderer_combo, w.resolution_combo, w.backend_combo,
                                                   w.steps_spin)]
    assert rows[0] < rows[1] < rows[2] < rows[3]  # the motion model's fine controls last
    w.close()


@pytest.fixture
def two_photos(astronaut, tmp_path):
    import cv2

    first, second = tmp_path / "first.png", tmp_path / "second.png"
    cv2.imwrite(str(first), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(second), cv2.cvtColor(astronaut[:, ::-1], cv2.COLOR_RGB2BGR))  # another file, another digest
    return first, second


def test_a_portrait_added_while_live_joins_the_library_but_does_not_go_on_the_call(qtbot, dirs, two_photos):  # noqa: F811
    needs("core.face")
    first, second = two_photos
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.add_paths([first])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=30000)
    switched: list[str] = []
    w.bridge.set_portrait = lambda path, face=0: switched.append(path)  # what would reach the running engine
    w.bridge._set_state("running")  # live, as far as the window can tell
    try:
        w.add_paths([second])
        qtbot.waitUntil(lambda: len(w.library) == 2, timeout=30000)
        assert w.portrait_list.count() == 2
        assert w.current_portrait().path == str(first.resolve()) and switched == []
        assert "click it" in w.statusBar().currentMessage()
        w.next_action.trigger()  # the explicit act: Ctrl+Right
        assert switched == [str(second.resolve())] and w.current_portrait().path == str(second.resolve())
    finally:
        w.bridge._set_state("stopped")
    w.close()


def test_stopped_a_new_portrait_becomes_the_current_one(qtbot, dirs, two_photos):  # noqa: F811
    needs("core.face")
    first, second = two_photos
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.add_paths([first])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=30000)
    w.add_paths([second])
    qtbot.waitUntil(lambda: len(w.library) == 2, timeout=30000)
    assert w.current_portrait().path == str(second.resolve())
    w.close()


def test_a_killed_app_comes_back_on_the_last_portrait_and_settings(qtbot, dirs, two_photos):  # noqa: F811
    """Nothing waits for a clean close: the window is never closed (as after a crash or `kill -9`), and a second
    window built from what is on disk has the library, the chosen portrait and the changed settings."""
    needs("core.face")
    w = make_window(qtbot, AppSettings(camera_enabled=False, renderer="full"))
    w.add_paths(list(two_photos))
    qtbot.waitUntil(lambda: len(w.library) == 2 and not w.portraits.adding, timeout=60000)
    w.fps_spin.setValue(20)
    w.loop_check.setChecked(True)
    w.camera_check.setChecked(True)
    other = 1 - w.portrait_list.currentRow()
    w.portrait_list.setCurrentRow(other)  # last: the user picks the other photo
    target = w.library[other].path

    settings, warnings = load_settings()  # what a restart reads
    assert not warnings
    assert settings.last_portrait == target
    assert settings.fps == 20 and settings.loop_audio_file and settings.camera_enabled
    again = make_window(qtbot, settings)
    assert len(again.library) == 2 and again.current_portrait().path == target
    assert again.fps_spin.value() == 20
    again.close()
    w.close()
