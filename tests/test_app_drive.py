"""Face driving in the app (issue 25): "Drive with" persists and reaches the session, the camera list, the camera
preview, and a camera that will not open or goes away mid-call (one message, the call goes on with the voice).

No real camera exists here: `cv2.VideoCapture` is replaced by a fake whose devices the test chooses, so the app's
camera scan and the session's own `core.drive.camera.Camera` both meet it. Everything else is real (synthetic
tiny weights, the test signal as the voice)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.drive import (  # noqa: E402
    FACE,
    FACE_VOICE,
    VOICE,
    CameraInfo,
    list_cameras,
    lost_message,
    open_failed_message,
    session_drive,
    session_drive_options,
)
from app.settings import AppSettings, load_settings, save_settings  # noqa: E402
from core.drive.camera import Camera, CameraError  # noqa: E402
from core.drive.mix import FACE_ONLY  # noqa: E402


class FakeCapture:
    """cv2.VideoCapture stand-in: `devices[index]` is what a camera at that index sends (BGR frames, repeated), or
    the index is absent (cannot be opened). `unplug(index)` makes it stop sending, as a pulled USB cable does."""

    devices: dict[int, np.ndarray] = {}
    unplugged: set[int] = set()
    lock = threading.Lock()

    def __init__(self, index: int, *args) -> None:
        self.index = index
        self.opened = index in self.devices

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self):
        with self.lock:
            if not self.opened or self.index in self.unplugged:
                return False, None
        return True, self.devices[self.index].copy()

    def set(self, prop: int, value: float) -> bool:  # the core asks for a one-frame driver buffer
        return self.opened

    def release(self) -> None:
        self.opened = False

    @classmethod
    def unplug(cls, index: int) -> None:
        with cls.lock:
            cls.unplugged.add(index)


@pytest.fixture
def fake_cameras(monkeypatch, astronaut):
    """Camera 0 shows the astronaut; no other index opens."""
    monkeypatch.setattr(FakeCapture, "devices", {0: cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)})
    monkeypatch.setattr(FakeCapture, "unplugged", set())
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return FakeCapture


# ---- Qt-free: the choices, the scan, the words ------------------------------------------------------------------
def test_drive_with_maps_onto_the_sessions_drive():
    assert session_drive(VOICE, "camera:1") is None and session_drive_options(VOICE) is None
    assert session_drive_options(FACE_VOICE) is None
    assert session_drive_options(FACE).split == FACE_ONLY  # the mouth from the face too
    assert session_drive(FACE_VOICE, "camera:1") == "camera:1"
    assert session_drive(FACE_VOICE, "") == "camera:0"


def test_the_camera_scan_lists_what_opens_within_its_time_box():
    t = [0.0]
    tried = []

    def opens(index: int, timeout: float) -> bool:
        tried.append((index, timeout))
        t[0] += timeout if index in (1, 3) else 0.1  # cameras 1 and 3 hang until their time box
        return index in (0, 2)

    found = list_cameras(opens, name=lambda i: "Integrated Webcam" if i == 0 else None, max_index=5, budget_s=3.0,
                         clock=lambda: t[0])
    assert found == [CameraInfo("camera:0", "Camera 0 — Integrated Webcam"), CameraInfo("camera:2", "Camera 2")]
    assert tried[1] == (1, 2.0)  # one camera gets at most PER_CAMERA_S
    assert [i for i, _ in tried] == [0, 1, 2, 3] and tried[3][1] == pytest.approx(0.8)  # the budget ends the scan
    assert list_cameras(lambda i, s: False, name=lambda i: None) == []
    tried.clear()
    first = list_cameras(opens, name=lambda i: None, stop=lambda: len(tried) == 1)
    assert first == [CameraInfo("camera:0", "Camera 0")] and len(tried) == 1  # stopped before the next camera


def test_the_camera_scan_meets_opencv_through_the_cores_camera(fake_cameras):
    assert [c.spec for c in list_cameras(max_index=3)] == ["camera:0"]


def test_camera_messages_name_the_problem_and_the_fix_in_the_apps_words():
    with pytest.raises(CameraError) as err:
        Camera(7, capture_factory=FakeCapture).open()
    text = open_failed_message(err.value)
    assert text.startswith("Face driving is off for this call because camera 7 cannot be opened")
    assert "--drive" not in text and "Drive with" in text and "voice" in text and "\n" not in text
    lost = lost_message("camera 0 stopped sending frames (unplugged or taken by another program); the avatar "
                        "continues without it")
    assert lost.startswith("Face driving stopped because camera 0 stopped sending frames (unplugged")
    assert "Stop and Start" in lost and "continues without it" not in lost


def test_the_drive_choice_is_saved_and_checked_like_the_other_settings(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(AppSettings(drive_mode=FACE_VOICE, drive_camera="camera:2"), path)
    loaded, warnings = load_settings(path)
    assert (loaded.drive_mode, loaded.drive_camera, warnings) == (FACE_VOICE, "camera:2", [])
    path.write_text('{"drive_mode": "telepathy", "drive_camera": "/dev/video0"}')
    loaded, warnings = load_settings(path)
    assert (loaded.drive_mode, loaded.drive_camera) == (VOICE, "camera:0") and len(warnings) == 2


# ---- the panel and its owner --------------------------------------------------------------------------------------
def _controls(qtbot, settings, cameras, bridge=None, lister=None):
    from PySide6.QtGui import QIcon

    from app.drive_controls import DriveControls
    from app.drive_panel import DrivePanel
    from app.tasks import TaskRunner

    panel, tasks = DrivePanel(QIcon()), TaskRunner()
    qtbot.addWidget(panel)
    said, saved = [], []
    bridge = bridge or SimpleNamespace(state="stopped", drive=SimpleNamespace(on=False, spec=None))
    controls = DriveControls(panel, tasks, settings, bridge, lambda text, **kw: said.append(text),
                             lambda: saved.append(1), lister=lister or (lambda: cameras))
    panel.show()
    return panel, controls, tasks, said, saved


def _choose(combo, data) -> None:
    """As a user does: pick an item (activated is the user's signal, not currentIndexChanged)."""
    combo.setCurrentIndex(combo.findData(data))
    combo.activated.emit(combo.currentIndex())


def test_the_preview_and_camera_list_come_with_face_driving_and_go_with_voice(qtbot):
    settings = AppSettings()
    cams = [CameraInfo("camera:0", "Camera 0"), CameraInfo("camera:2", "Camera 2 — USB")]
    opened = threading.Event()

    def slow_scan() -> list[CameraInfo]:  # a camera driver that takes its time: held until the test lets it go
        assert opened.wait(10)
        return cams

    panel, controls, tasks, said, saved = _controls(qtbot, settings, cams, lister=slow_scan)
    controls.restore()
    assert panel.preview.isHidden() and panel.camera_combo.isHidden() and controls.cameras is None  # no scan
    face_item = panel.mode_combo.model().item(panel.mode_combo.findData(FACE))
    assert face_item.isEnabled() and "mouth follow your face" in face_item.toolTip()
    _choose(panel.mode_combo, FACE_VOICE)
    assert not panel.preview.isHidden() and not panel.camera_combo.isHidden()
    # the GUI is back while the scan still waits in its worker: it says so, and the rescan button waits too
    assert panel.note.text() == "Looking for cameras…" and not panel.rescan_button.isEnabled()
    opened.set()
    qtbot.waitUntil(lambda: controls.cameras is not None, timeout=10000)
    assert panel.rescan_button.isEnabled() and panel.note.isHidden()
    assert [panel.camera_combo.itemData(i) for i in range(panel.camera_combo.count())] == ["camera:0", "camera:2"]
    _choose(panel.camera_combo, "camera:2")
    assert (settings.drive_mode, settings.drive_camera) == (FACE_VOICE, "camera:2") and len(saved) == 2
    _choose(panel.mode_combo, VOICE)
    assert panel.preview.isHidden() and settings.drive_mode == VOICE and not said
    tasks.shutdown()


def test_no_camera_found_is_said_once_with_the_fix_and_a_lost_choice_stays_visible(qtbot):
    from app.drive import NO_CAMERA

    settings = AppSettings(drive_mode=FACE_VOICE, drive_camera="camera:1")
    panel, controls, tasks, said, _ = _controls(qtbot, settings, [])
    controls.restore()  # a saved face choice scans at once
    qtbot.waitUntil(lambda: controls.cameras is not None, timeout=10000)
    assert panel.note.text() == NO_CAMERA and said == [NO_CAMERA] and "rescan" in NO_CAMERA
    assert panel.camera_combo.currentText() == "Camera 1 (not found)" and settings.drive_camera == "camera:1"
    tasks.shutdown()


def test_a_change_while_live_says_it_applies_at_the_next_start(qtbot):
    from app.drive import NEXT_START

    bridge = SimpleNamespace(state="running", drive=SimpleNamespace(on=False, spec=None))
    panel, controls, tasks, _, _ = _controls(qtbot, AppSettings(), [CameraInfo("camera:0", "Camera 0")], bridge)
    controls.restore()
    assert panel.note.isHidden()
    _choose(panel.mode_combo, FACE_VOICE)
    qtbot.waitUntil(lambda: controls.cameras is not None, timeout=10000)
    assert panel.note.text() == NEXT_START and not panel.note.isHidden()
    _choose(panel.mode_combo, VOICE)  # back to what the run uses: nothing waits
    assert panel.note.isHidden()
    tasks.shutdown()


def test_the_camera_preview_copies_into_one_buffer_and_draws_it(qtbot, astronaut):
    from PySide6.QtGui import QImage

    from app.camera_preview import CameraPreview

    preview = CameraPreview()
    qtbot.addWidget(preview)
    preview.resize(160, 160)
    image = preview.current_image()
    crop = np.ascontiguousarray(cv2.resize(astronaut, (256, 256)))
    expected = tuple(int(v) for v in crop[100, 128])
    preview.show_crop(crop)
    crop[:] = 0  # the caller's array is its own again: the preview keeps its copy
    assert preview.current_image() is image  # no new picture per update: the one image shows the new pixels
    shown = image.pixelColor(128, 100)
    assert (shown.red(), shown.green(), shown.blue()) == expected
    out = QImage(160, 160, QImage.Format.Format_ARGB32)
    preview.render(out)
    drawn = out.pixelColor(62, 37)  # the astronaut's cheek (crop pixel 100, 60), far brighter than the background
    assert drawn.red() + drawn.green() + drawn.blue() > 500
    preview.show_no_face()
    preview.render(out)
    dimmed = out.pixelColor(62, 37)
    assert dimmed.red() + dimmed.green() + dimmed.blue() < drawn.red() + drawn.green() + drawn.blue()


# ---- the whole window, live ---------------------------------------------------------------------------------------
@pytest.fixture
def drive_window(qtbot, tmp_path, monkeypatch, astronaut, fake_cameras):
    from app.main_window import MainWindow

    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    png = tmp_path / "astronaut.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))

    def make(settings: AppSettings):
        from app.engine_bridge import InputChoice

        w = MainWindow(settings, synthetic="tiny")
        qtbot.addWidget(w)
        w.show()
        w.add_paths([png])
        qtbot.waitUntil(lambda: len(w.library) == 1 and w.start_button.isEnabled(), timeout=20000)
        w.select_input(InputChoice("generator"))
        made.append(w)
        return w

    made = []
    yield make
    for w in made:
        if w.isVisible():  # a test may have closed it already (a restart)
            w.close()
        assert w.bridge.session.engine is None


def _live(qtbot, w) -> None:
    w.start()
    qtbot.waitUntil(lambda: w.bridge.state == "running", timeout=60000)


def test_the_choice_survives_a_restart_and_start_passes_it_to_the_session(qtbot, drive_window):
    w = drive_window(AppSettings(camera_enabled=False, device="cpu", renderer="full"))
    _choose(w.drive_panel.mode_combo, FACE_VOICE)
    qtbot.waitUntil(lambda: w.drive.cameras is not None, timeout=10000)
    _choose(w.drive_panel.camera_combo, "camera:0")
    w.close()
    settings, warnings = load_settings()  # the file the first window wrote
    assert (settings.drive_mode, settings.drive_camera, warnings) == (FACE_VOICE, "camera:0", [])
    w = drive_window(settings)  # a restart
    assert w.drive_panel.mode() == FACE_VOICE and not w.drive_panel.preview.isHidden()
    _live(qtbot, w)
    drive = w.bridge.session.drive
    assert drive is not None and drive.spec == "camera:0" and w.bridge.drive.on
    # the camera's face reaches the preview through the GUI thread, and the status line says face driving is on
    qtbot.waitUntil(lambda: w.drive_panel.preview.updates >= 2, timeout=30000)
    qtbot.waitUntil(lambda: "face + voice (Camera 0" in w.status_label.text(), timeout=10000)
    # unplugged mid-call: one message with the fix, the call goes on with the voice, the status line says so
    FakeCapture.unplug(0)
    qtbot.waitUntil(lambda: any(m.startswith("Face driving stopped") for m in w.messages), timeout=20000)
    assert w.bridge.state == "running" and not w.bridge.drive.on
    assert [m for m in w.messages if "stopped sending frames" in m] == [
        lost_message("camera 0 stopped sending frames (unplugged or taken by another program)")]
    qtbot.waitUntil(lambda: "face driving lost (Camera 0): voice only" in w.status_label.text(), timeout=10000)
    qtbot.waitUntil(lambda: not w.drive.timer.isActive(), timeout=5000)
    frames = w.preview.frames_shown
    qtbot.waitUntil(lambda: w.preview.frames_shown > frames + 5, timeout=20000)  # still live, on the voice


def test_face_only_reaches_the_session_and_the_status_line(qtbot, drive_window):
    w = drive_window(AppSettings(camera_enabled=False, device="cpu", renderer="full", drive_mode=FACE,
                                 drive_camera="camera:0"))
    assert w.drive_panel.mode() == FACE
    _live(qtbot, w)
    drive = w.bridge.session.drive
    assert drive is not None and drive.source.split == FACE_ONLY
    qtbot.waitUntil(lambda: "face (Camera 0" in w.status_label.text(), timeout=20000)


def test_a_camera_that_will_not_open_gives_one_message_and_the_call_goes_on_with_the_voice(qtbot, drive_window):
    w = drive_window(AppSettings(camera_enabled=False, device="cpu", renderer="full", drive_mode=FACE_VOICE,
                                 drive_camera="camera:3"))
    _live(qtbot, w)
    failed = [m for m in w.messages if m.startswith("Face driving is off")]
    assert len(failed) == 1 and "camera 3 cannot be opened" in failed[0] and "Drive with" in failed[0]
    assert w.bridge.session.drive is None and not w.bridge.drive.on
    qtbot.waitUntil(lambda: "face driving off (Camera 3 did not open): voice only" in w.status_label.text(),
                    timeout=10000)
    frames = w.preview.frames_shown
    qtbot.waitUntil(lambda: w.preview.frames_shown > frames + 5, timeout=20000)  # the avatar is live
    assert w.drive_panel.preview.updates == 0 and not w.drive.timer.isActive()
