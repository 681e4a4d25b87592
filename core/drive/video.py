"""A driving video -> its face, frame by frame, on the 25 fps output timeline.

Timing: output frame k shows the driving frame on screen at k / 25 s (the last frame whose timestamp is at or
before it), so a 30 or 60 fps video drives 25 fps without drift and a 25 fps video gives one output frame per
driving frame. The last frame lasts one frame period of the video.

Crop: LivePortrait's driving-video crop (cropper.crop_driving_video, crop_config.py: scale 2.2, vx 0, vy -0.1,
no rotation): the face square of every frame is found (Headcast's detector, core/face.py, largest face), and then
ONE window, the mean of those squares, crops every frame (to 512, black outside the frame, then resized to 256,
as the official does). One fixed window is what lets the driver's head movement and distance reach the motion
extractor as translation and scale; a window following the face would cancel them. Frames without a face are
marked; what happens to them is the caller's choice (core/drive/take.py holds and eases).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.face import CROP_SIZE, CropRule, FaceCrop, FaceCropper, NoFaceError, crop_matrix
from core.timebase import FPS

DRIVING_CROP_RULE = CropRule(scale=2.2, vx_ratio=0.0, vy_ratio=-0.1, rotate=False)
WINDOW_SIZE = 512  # the official crops the driving window at 512 and then resizes to 256
TIME_EPS = 1e-4  # seconds: container timestamps are rounded to their time base


class DrivingVideoError(ValueError):
    """The driving video cannot be read (missing, not a video, no video track)."""


@dataclass(frozen=True)
class DrivingFrame:
    index: int  # output frame number on the 25 fps timeline
    crop: FaceCrop | None  # None: no face in this frame


def timed_frames(path: str | Path, fps: int = FPS) -> Iterator[tuple[float, np.ndarray]]:
    """Decode `path` -> (seconds since its first frame, RGB uint8 frame) per video frame, then once
    (end time, None): the last frame lasts one frame period of the video."""
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except Exception as exc:  # av raises many error types for broken files
        raise DrivingVideoError(f"{path} is not a video FFmpeg can read. Use an mp4, mov, mkv or webm file.") from exc
    with container:
        if not container.streams.video:
            raise DrivingVideoError(f"{path} has no video track. Give a video of a face to drive with.")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or fps)
        t0, t, seen = None, 0.0, False
        try:
            for n, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else n / rate
                t0 = t if t0 is None else t0
                t -= t0
                image = frame.to_ndarray(format="rgb24")
                seen = True
                yield t, image
        except av.error.FFmpegError as exc:
            if not seen:
                raise DrivingVideoError(f"{path} is damaged: FFmpeg could not decode it.") from exc
        if not seen:
            raise DrivingVideoError(f"{path} has no frames. Give a video of a face to drive with.")
        yield t + 1.0 / rate, None


def frames_at_output_rate(path: str | Path, fps: int = FPS) -> Iterator[np.ndarray]:
    """Decode `path` and yield RGB uint8 frames resampled to `fps` by timestamp (see the module docstring)."""
    k, prev = 0, None
    for t, image in timed_frames(path, fps):
        while prev is not None and k / fps < t - TIME_EPS:
            yield prev
            k += 1
        prev = image if image is not None else prev


def driving_cropper(cropper: FaceCropper) -> FaceCropper:
    """The portrait's cropper (same detector) with LivePortrait's driving-video crop rule."""
    c = copy.copy(cropper)
    c.rule = DRIVING_CROP_RULE
    return c


def driving_faces(path: str | Path, cropper: FaceCropper, fps: int = FPS) -> Iterator[DrivingFrame]:
    """Each output frame's driving face crop (the largest face), or None where the frame shows no face."""
    cropper = driving_cropper(cropper)
    name = Path(path).name
    for i, image in enumerate(frames_at_output_rate(path, fps)):
        try:
            crop = cropper.crop(image, f"{name} frame {i}", face=0)
        except NoFaceError:
            crop = None
        yield DrivingFrame(i, crop)


def face_square(crop: FaceCrop) -> tuple[np.ndarray, float]:
    """(centre (2,), side) in image pixels of the square a crop covers."""
    half = crop.crop.shape[0] / 2
    inv = crop.inverse
    center = inv[:, :2] @ np.array([half, half]) + inv[:, 2]
    side = crop.crop.shape[0] / float(np.sqrt(abs(np.linalg.det(crop.matrix[:, :2]))))
    return center, side


def driving_window(squares: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """The one (2, 3) image -> WINDOW_SIZE crop matrix for the whole video: the mean of the frames' face squares
    (`face_square`), as the official averages the frames' boxes."""
    center = np.mean([c for c, _ in squares], axis=0)
    side = float(np.mean([s for _, s in squares]))
    return crop_matrix(center, side, 0.0, WINDOW_SIZE)


def crop_window(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """A frame through the driving window -> (256, 256, 3) uint8 (black outside the frame)."""
    big = cv2.warpAffine(image, window, (WINDOW_SIZE, WINDOW_SIZE), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return cv2.resize(big, (CROP_SIZE, CROP_SIZE))
