"""A driving video -> its face, frame by frame, on the 25 fps output timeline.

Timing: output frame k shows the driving frame on screen at k / 25 s (the last frame whose timestamp is at or
before it), so a 30 or 60 fps video drives 25 fps without drift and a 25 fps video gives one output frame per
driving frame. The last frame lasts one frame period of the video.

Crop: LivePortrait's driving-video crop (crop_config.py: scale 2.2, vx 0, vy -0.1) around the largest face of
each frame, with Headcast's detector (core/face.py). Frames without a face are marked; what happens to them is
the caller's choice (core/drive/take.py holds and eases).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.face import CropRule, FaceCrop, FaceCropper, NoFaceError
from core.timebase import FPS

DRIVING_CROP_RULE = CropRule(scale=2.2, vx_ratio=0.0, vy_ratio=-0.1)
TIME_EPS = 1e-4  # seconds: container timestamps are rounded to their time base


class DrivingVideoError(ValueError):
    """The driving video cannot be read (missing, not a video, no video track)."""


@dataclass(frozen=True)
class DrivingFrame:
    index: int  # output frame number on the 25 fps timeline
    crop: FaceCrop | None  # None: no face in this frame


def frames_at_output_rate(path: str | Path, fps: int = FPS) -> Iterator[np.ndarray]:
    """Decode `path` and yield RGB uint8 frames resampled to `fps` by timestamp (see the module docstring)."""
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
        k, prev, t0, t = 0, None, None, 0.0
        try:
            for n, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else n / rate
                t0 = t if t0 is None else t0
                t -= t0
                while prev is not None and k / fps < t - TIME_EPS:
                    yield prev
                    k += 1
                prev = frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            if prev is None:
                raise DrivingVideoError(f"{path} is damaged: FFmpeg could not decode it.") from exc
        if prev is None:
            raise DrivingVideoError(f"{path} has no frames. Give a video of a face to drive with.")
        end = t + 1.0 / rate
        while k / fps < end - TIME_EPS:
            yield prev
            k += 1


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
