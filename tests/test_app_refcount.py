"""None's reference count stays put while the window paints (issue 21): PySide6 6.12.0 on Python < 3.12 drops one
reference to None on every Qt call that returns nothing, and Python aborted ("none_dealloc") 8-12 minutes into a
call. The pin in pyproject.toml keeps installs off that version, app/qt_binding.py refuses it at start, and these
tests fail on an environment that has it."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest

from app.qt_binding import FIX_REQUIREMENT, binding_problem, drops_none_references

REPO = Path(__file__).resolve().parents[1]
PAINTS = 3000  # repaints per widget state: a leaking binding drops several references per repaint
TOLERANCE = 50  # None's count moves by a few as caches fill; a leak moves it by thousands


def _drop_none() -> None:
    """What the buggy binding does on every void call: one Py_DECREF(None) too many."""
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(None))


@pytest.fixture
def none_reserve():
    """Extra references to None, so a leaking binding fails the test instead of aborting the test process."""
    reserve = [None] * 500_000
    yield
    del reserve


def test_the_check_spots_a_binding_that_drops_none_references(none_reserve):
    if sys.version_info >= (3, 12):
        pytest.skip("None is immortal on Python 3.12+: no call can lower its count")
    assert drops_none_references(_drop_none)
    assert not drops_none_references(lambda: None)
    problem = binding_problem(_drop_none)
    assert problem is not None and "PySide6" in problem and f"pip install '{FIX_REQUIREMENT}'" in problem
    assert "\n" not in problem
    assert binding_problem(lambda: None) is None


def test_the_installed_qt_binding_keeps_none_alive(qapp, none_reserve):
    """Fails on PySide6 6.12.0 with Python 3.10/3.11 (measured: -64 of 64 calls): reinstall with pyproject.toml's
    range (`pip install -e .` or `make run`)."""
    import PySide6

    assert not drops_none_references(), (f"PySide6 {PySide6.__version__} drops a reference to None on every void "
                                         f"call: install '{FIX_REQUIREMENT}'")


def test_pyproject_keeps_python_3_11_installs_off_pyside6_6_12_0():
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pyside = [Requirement(d) for d in deps if d.startswith("PySide6")]
    for python in ("3.10", "3.11"):
        applies = [r for r in pyside if r.marker is None or r.marker.evaluate({"python_version": python})]
        assert applies, python
        for r in applies:
            assert not r.specifier.contains("6.12.0") and r.specifier.contains("6.11.3"), (python, str(r))


def _paint(widget, image, times: int) -> int:
    """Render `widget` into `image` `times` times; returns the change in None's reference count."""
    widget.render(image)  # first paint: caches, fonts
    before = sys.getrefcount(None)
    for _ in range(times):
        widget.render(image)
    return sys.getrefcount(None) - before


def test_the_level_meter_and_preview_paint_thousands_of_times_without_losing_none(qapp, none_reserve):
    from PySide6.QtGui import QImage

    from app.widgets import LevelMeter, PreviewWidget

    meter = LevelMeter()
    meter.resize(200, 14)
    image = QImage(200, 14, QImage.Format.Format_ARGB32)
    for level, peak in ((-120.0, -120.0), (-30.0, -20.0), (-6.0, -4.0), (-1.0, 0.0)):  # each colour and the peak
        meter.set_level(level, peak)
        assert _paint(meter, image, PAINTS) > -TOLERANCE, (level, peak)

    preview = PreviewWidget()
    preview.resize(320, 240)
    image = QImage(320, 240, QImage.Format.Format_ARGB32)
    preview.set_placeholder("Press Start (F5) to go live.")
    assert _paint(preview, image, PAINTS) > -TOLERANCE  # the placeholder text
    frame = np.zeros((256, 256, 3), np.uint8)
    frame[64:192, 64:192] = 200
    preview.show_frame(frame)
    assert _paint(preview, image, PAINTS) > -TOLERANCE  # a letterboxed frame
    assert image.pixelColor(160, 120).red() > 150  # the frame was drawn, not only the background


def test_the_camera_preview_paints_thousands_of_times_without_losing_none(qapp, none_reserve):
    """Face driving's preview repaints ~15 times a second for a whole call (issue 25): placeholder, picture, and
    the dimmed no-face state, each painted and updated thousands of times."""
    from PySide6.QtGui import QImage

    from app.camera_preview import CameraPreview

    preview = CameraPreview()
    image = QImage(preview.size(), QImage.Format.Format_ARGB32)
    preview.set_placeholder("Your camera shows here during a call.")
    assert _paint(preview, image, PAINTS) > -TOLERANCE
    crop = np.zeros((256, 256, 3), np.uint8)
    crop[64:192, 64:192] = 200
    preview.show_crop(crop)
    assert _paint(preview, image, PAINTS) > -TOLERANCE
    before = sys.getrefcount(None)
    for _ in range(PAINTS):  # an update per picture: copied into the preview's one buffer
        preview.show_crop(crop)
    assert sys.getrefcount(None) - before > -TOLERANCE
    preview.show_no_face()
    assert _paint(preview, image, PAINTS) > -TOLERANCE
    assert image.pixelColor(80, 80).red() > 30  # the dimmed picture is still drawn under the text


def test_the_whole_window_repaints_without_losing_none(qtbot, tmp_path, monkeypatch, none_reserve):
    """Every paint path of the window (labels, buttons, lists, the meter's timer) at once, a few hundred times."""
    from PySide6.QtGui import QImage

    from app.main_window import MainWindow
    from app.settings import AppSettings

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow(AppSettings(camera_enabled=False), synthetic="tiny")
    qtbot.addWidget(w)
    w.show()
    image = QImage(w.size(), QImage.Format.Format_ARGB32)
    w.level_meter.set_level(-10.0, -5.0)
    assert _paint(w, image, 200) > -TOLERANCE
    w.close()
