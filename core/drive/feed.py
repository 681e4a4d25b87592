"""The live driving feed: a thread reads the camera (or a video standing in for one), finds and crops the face, and
keeps only the newest result with its capture time (issue 25, live).

Why only the newest: a 30 or 60 fps camera drives 25 fps output, and the worker takes a driving frame whenever it
makes a motion row; a queue would fall behind and add latency without bound, the newest never does. The thread
does the CPU work (decode, face detection, crop); the motion extractor runs on the engine's worker (which owns
the model device) when a row takes a new sample (core/drive/face_voice.py).

Crop: LivePortrait's driving rule (core/drive/video.py) through one fixed window, set on the first face seen, so
head movement and distance reach the motion extractor as translation and scale, as offline. The consumer may ask
for a new window (`reanchor`) once the face has been gone long enough that its motion no longer shows: the next
face then gets a window of its own (a new `anchor`, so the consumer restarts its reference frame there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.drive.camera import CameraLostError
from core.drive.capture import DrivingReader
from core.drive.video import crop_window, driving_cropper, driving_window, face_square
from core.face import FaceCropper, NoFaceError
from core.timebase import FPS

log = logging.getLogger(__name__)

PROCESS_EVERY_S = 0.75 / FPS  # a frame sooner than this after the last one processed is read but not processed
IDLE_WAIT_S = 0.005  # after a read that gave no frame


@dataclass(frozen=True)
class DrivingSample:
    seq: int  # rises with every processed frame: the consumer extracts motion once per sample
    capture_time: float  # the reader's clock when the frame arrived
    crop: np.ndarray | None  # (256, 256, 3) uint8 through the driving window; None: no face in this frame
    landmarks: np.ndarray | None  # the face's landmarks (203 with the ONNX models), for the eye / lip ratios
    anchor: int  # the driving window it was cropped through (a new one after `reanchor`)


class FaceTracker:
    """Frame -> the driving crop of its largest face through the run's window, or None without a face."""

    def __init__(self, cropper: FaceCropper) -> None:
        self.cropper = driving_cropper(cropper)
        self.window: np.ndarray | None = None
        self.anchor = 0
        self._reanchor = threading.Event()

    def reanchor(self) -> None:
        """Any thread: the next face found sets a new window."""
        self._reanchor.set()

    def track(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            face = self.cropper.crop(image, "driving frame", face=0)
        except NoFaceError:
            return None
        if self.window is None or self._reanchor.is_set():
            self._reanchor.clear()
            self.window = driving_window([face_square(face)])
            self.anchor += 1
        return crop_window(image, self.window), face.landmarks


class DrivingFeed:
    """The newest driving sample and whether the source is gone; written by the driving thread, read by the
    worker (one lock, held for a pointer swap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample: DrivingSample | None = None
        self.gone: str | None = None  # why the source went away (camera unplugged, video ended), once it has

    def publish(self, sample: DrivingSample) -> None:
        with self._lock:
            self._sample = sample

    def latest(self) -> DrivingSample | None:
        with self._lock:
            return self._sample


class DrivingThread:
    """Reads `reader`, tracks the face and publishes to `feed` until stopped or until the source is gone."""

    def __init__(self, reader: DrivingReader, tracker: FaceTracker, feed: DrivingFeed,
                 on_message: Callable[[str], None] | None = None, every_s: float = PROCESS_EVERY_S) -> None:
        self.reader, self.tracker, self.feed = reader, tracker, feed
        self.on_message = on_message
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._last: float | None = None
        self.idle = False  # the last read gave no frame

    def step(self) -> bool:
        """Read one frame and publish it if due; False once the source is gone (said once via on_message)."""
        if self.feed.gone:
            return False
        try:
            frame = self.reader.read()
        except CameraLostError as exc:
            self._gone(str(exc))
            return False
        self.idle = frame is None
        if frame is None or (self._last is not None and frame.capture_time - self._last < self.every_s):
            return True
        self._last = frame.capture_time
        found = self.tracker.track(frame.image)
        crop, landmarks = found if found is not None else (None, None)
        self._seq += 1
        self.feed.publish(DrivingSample(self._seq, frame.capture_time, crop, landmarks, self.tracker.anchor))
        return True

    def _gone(self, why: str) -> None:
        self.feed.gone = why
        if self.on_message is None:
            log.warning("%s", why)
        else:
            self.on_message(f"{why[:1].upper()}{why[1:]}.")

    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and self.step():
                if self.idle:  # a camera that failed one read answers at once: do not spin until it is lost
                    self._stop.wait(IDLE_WAIT_S)
        except Exception as exc:  # a broken driver or a decode error must not end the run: it goes on on speech
            log.exception("driving source failed")
            self._gone(f"the driving source {self.reader.name} failed ({exc}); the avatar continues on speech")
        finally:
            self.reader.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="headcast-drive", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait up to `timeout` s (a camera read returns within one frame period)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None:
            self.reader.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
