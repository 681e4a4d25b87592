"""What `--drive` names for `live`: a camera (core/drive/camera.py) or a video file standing in for one.

A video file is played like a camera: its frame at video time t "arrives" at start + t on the caller's clock (the
reader waits for it), and a reader that fell behind gets the newest frame that has arrived, not the backlog, as a
camera overwrites its buffer. At its end the file is a camera that went away (the avatar continues on speech),
unless it loops. Both readers have the same three calls: open(), read() -> CameraFrame | None, close().
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from core.drive.camera import Camera, CameraError, CameraFrame, CameraLostError, camera_index
from core.drive.video import DrivingVideoError, timed_frames


class DrivingReader(Protocol):
    """A camera, or a video file paced like one."""

    name: str

    def open(self) -> DrivingReader: ...

    def read(self) -> CameraFrame | None:
        """The newest frame (None: none this time); CameraLostError once the source is gone for good."""

    def close(self) -> None: ...


class DrivingEnded(CameraLostError):
    """A driving video (standing in for a camera) played to its end."""


class VideoCamera:
    """A driving video delivered at its own pace on `clock`, as a camera would deliver it."""

    def __init__(self, path: str | Path, loop: bool = False, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.loop = loop
        self._clock, self._sleep = clock, sleep
        self._frames: Iterator[tuple[float, np.ndarray | None]] | None = None
        self._t0 = 0.0
        self._next: tuple[float, np.ndarray | None] | None = None

    def open(self) -> VideoCamera:
        self._frames = timed_frames(self.path)
        self._next = next(self._frames)  # DrivingVideoError for a file that is not a video, said at open
        self._t0 = self._clock()
        return self

    def read(self) -> CameraFrame | None:
        if self._frames is None:
            raise CameraError(f"driving video {self.name} is not open")
        t, image = self._next
        if image is None:  # the end: loop, or the stand-in camera is gone
            if not self.loop:
                self.close()
                raise DrivingEnded(f"driving video {self.name} ended; the avatar continues on speech")
            self.open()
            t, image = self._next
        wait = self._t0 + t - self._clock()
        if wait > 0:
            self._sleep(wait)
        self._next = next(self._frames)
        # behind (a slow reader): skip to the newest frame already due, as a camera overwrites its buffer
        while self._next[1] is not None and self._t0 + self._next[0] <= self._clock():
            t, image = self._next
            self._next = next(self._frames)
        return CameraFrame(image, self._t0 + t)

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None

    def __enter__(self) -> VideoCamera:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def driving_reader(spec: str, loop: bool = False, clock: Callable[[], float] = time.monotonic) -> DrivingReader:
    """`camera`, `camera:N` or a video path -> its reader (not yet open)."""
    index = camera_index(spec)
    if index is not None:
        return Camera(index, clock=clock)
    return VideoCamera(spec, loop=loop, clock=clock)


def drive_problem(spec: str) -> str | None:
    """Why `--drive spec` cannot be used, with the fix, in one line (the camera is opened and closed again, the
    video's first frame decoded); None when it can. No model is needed: callers say this before loading any."""
    index = camera_index(spec)
    if index is None and not Path(spec).is_file():
        return (f"--drive {spec}: no such video file. Give a video of a face, 'camera' or 'camera:N' "
                "(N: the camera's index)")
    reader = driving_reader(spec)
    try:
        reader.open()
    except (CameraError, DrivingVideoError) as exc:
        return f"--drive {spec}: {exc}"
    finally:
        reader.close()
    return None
