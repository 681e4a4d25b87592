"""A camera as a driving source: OpenCV capture, each frame stamped with its capture time.

`--drive camera` / `camera:INDEX` (issue 25): this module owns opening, reading and losing a camera; the driving
thread (core/drive/feed.py) reads it for `live`. Opening is time-boxed (OPEN_TIMEOUT_S: some drivers block on a
busy device) and OpenCV's own warnings about a missing index are silenced (the CameraError says it once). A camera
that cannot be opened (unplugged, busy, no such index) is one CameraError with the fix; a camera that stops
delivering frames mid-run (unplugged) is a CameraLostError after `lost_after_s` seconds without a frame, so a
dropped frame or two is not mistaken for a lost camera. The capture time is read right after the frame arrives, on
the caller's clock (time.monotonic by default, injectable for tests).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CAMERA_SPEC = re.compile(r"^camera(?::(\d+))?$")
LOST_AFTER_S = 2.0  # this long without a frame: the camera is gone
OPEN_TIMEOUT_S = 5.0  # a camera that has not opened by then is reported as busy


class CameraError(RuntimeError):
    """The camera cannot be opened."""


class CameraLostError(CameraError):
    """The camera stopped delivering frames during the run."""


def camera_index(spec: str) -> int | None:
    """'camera' -> 0, 'camera:2' -> 2; anything else (a file path) -> None."""
    m = CAMERA_SPEC.match(spec.strip().lower())
    return None if m is None else int(m.group(1) or 0)


@dataclass(frozen=True)
class CameraFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    capture_time: float  # the clock's time when the frame arrived


class Camera:
    def __init__(self, index: int, capture_factory: Callable | None = None,
                 clock: Callable[[], float] = time.monotonic, lost_after_s: float = LOST_AFTER_S) -> None:
        self.index = index
        self.name = f"camera {index}"
        self._factory = capture_factory
        self._clock = clock
        self._lost_after = lost_after_s
        self._cap = None
        self._last_frame_time: float | None = None

    def open(self, timeout_s: float = OPEN_TIMEOUT_S) -> Camera:
        factory = self._factory or _quiet_capture
        box: list = []
        opener = threading.Thread(target=lambda: box.append(factory(self.index)), name="headcast-camera-open",
                                  daemon=True)
        opener.start()
        opener.join(timeout_s)
        if not box:  # still blocked inside the driver: leave it to finish on its daemon thread
            raise CameraError(f"camera {self.index} did not open within {timeout_s:.0f} s: it is busy or its driver "
                              "hangs. Close other video apps or replug it, or choose another with --drive camera:N")
        cap = box[0]
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"camera {self.index} cannot be opened: it is unplugged, in use by another program, or "
                              "does not exist. Close other video apps, or choose another with --drive camera:N")
        self._cap = cap
        self._last_frame_time = self._clock()
        return self

    def read(self) -> CameraFrame | None:
        """The next frame, or None when none came this time; CameraLostError once none came for lost_after_s."""
        if self._cap is None:
            raise CameraError(f"camera {self.index} is not open")
        ok, bgr = self._cap.read()
        now = self._clock()
        if not ok or bgr is None:
            if now - self._last_frame_time >= self._lost_after:
                self.close()
                raise CameraLostError(f"camera {self.index} stopped sending frames (unplugged or taken by another "
                                      "program); the avatar continues without it")
            return None
        self._last_frame_time = now
        return CameraFrame(np.ascontiguousarray(bgr[..., ::-1]), now)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Camera:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _quiet_capture(index: int):
    """cv2.VideoCapture(index) without OpenCV's warnings on stderr (a missing index prints two of them)."""
    import cv2

    logging = getattr(cv2.utils, "logging", None)
    if logging is None:
        return cv2.VideoCapture(index)
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        logging.setLogLevel(level)
