"""The camera driving source: specs, an unreadable index, a camera that disappears mid-run, capture times."""

from __future__ import annotations

import numpy as np
import pytest

from core.drive.camera import Camera, CameraError, CameraLostError, camera_index


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeCapture:
    """Delivers `frames` frames, then nothing (an unplugged camera)."""

    def __init__(self, frames: int, opened: bool = True) -> None:
        self.left, self.opened, self.released = frames, opened, False

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return self.opened

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[..., 0] = 255  # blue in BGR
        return True, bgr

    def release(self) -> None:
        self.released = True


def test_camera_specs():
    assert camera_index("camera") == 0 and camera_index("camera:3") == 3 and camera_index("CAMERA:1") == 1
    assert camera_index("me.mp4") is None and camera_index("camera:x") is None


def test_unreadable_camera_index_is_one_clear_error():
    with pytest.raises(CameraError, match="camera 97 cannot be opened.*--drive camera:N"):
        Camera(97).open()  # the real OpenCV capture: no such device here or in CI
    cap = FakeCapture(0, opened=False)
    with pytest.raises(CameraError, match="in use by another program"):
        Camera(0, capture_factory=lambda i: cap).open()
    assert cap.released


def test_frames_carry_their_capture_time_in_rgb():
    clock = FakeClock()
    with Camera(0, capture_factory=lambda i: FakeCapture(2), clock=clock) as cam:
        clock.t = 101.5
        f = cam.read()
    assert f.capture_time == 101.5 and f.image.shape == (4, 6, 3) and f.image[0, 0].tolist() == [0, 0, 255]


def test_camera_that_disappears_mid_run():
    clock = FakeClock()
    cap = FakeCapture(3)
    cam = Camera(1, capture_factory=lambda i: cap, clock=clock, lost_after_s=2.0).open()
    assert all(cam.read() is not None for _ in range(3))
    clock.t += 0.5
    assert cam.read() is None  # a missed frame is not a lost camera
    clock.t += 1.6
    with pytest.raises(CameraLostError, match="camera 1 stopped sending frames"):
        cam.read()
    assert cap.released


def test_a_camera_open_that_hangs_is_time_boxed():
    import threading
    import time

    release = threading.Event()

    def hanging(index):
        release.wait(30)  # a driver stuck on a busy device
        return FakeCapture(1)

    t0 = time.monotonic()
    with pytest.raises(CameraError, match="camera 3 did not open within 0 s.*--drive camera:N"):
        Camera(3, capture_factory=hanging).open(timeout_s=0.2)
    release.set()
    assert time.monotonic() - t0 < 20  # the open returned on its own, long before the driver did


def test_opencv_warnings_about_a_missing_index_are_silenced(capfd):
    with pytest.raises(CameraError):
        Camera(9).open()
    err = capfd.readouterr().err
    assert "WARN" not in err and "can't open camera" not in err, err
