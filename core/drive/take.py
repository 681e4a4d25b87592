"""A driving take: the motion of every output frame of a driving video, and where its face was missing.

Built in two passes over the video, keeping only small per-frame data, so a long video never sits in memory:
find the face in every frame (its square and landmarks), then decode again and crop every frame through the one
driving window (core/drive/video.py) into the motion extractor, in batches. Rendering (core/drive/render.py) and
template recording (core/drive/template.py) both start from the take.

Frames without a face: the motion holds the last face seen (before the first face: the first face's motion,
i.e. the portrait at rest under relative motion); `presence_weights` then eases such stretches to the rest pose
after HOLD_FRAMES and back to the face when it returns, EASE_FRAMES each way, so nothing jumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.drive.motion import DrivingMotion, extract_motion
from core.drive.video import crop_window, driving_faces, driving_window, face_square, frames_at_output_rate
from core.face import FaceCropper
from core.timebase import FPS

HOLD_FRAMES = 6  # 0.24 s: a missed detection or a blink of the camera just holds the pose
EASE_FRAMES = 12  # 0.48 s to ease to the rest pose, and back when the face returns
MOTION_BATCH = 16


class NoDrivingFaceError(ValueError):
    """Not one frame of the driving video shows a face."""


@dataclass
class DrivingTake:
    motion: DrivingMotion  # (N, ...) one entry per output frame, missing faces filled (see module docstring)
    present: np.ndarray  # (N,) bool: a face was found in this frame
    fps: int = FPS

    def __len__(self) -> int:
        return len(self.motion)

    @property
    def missing(self) -> int:
        return int((~self.present).sum())


class Presence:
    """How much of the driver's motion shows, stepped one frame at a time (offline takes and live driving alike).

    With a face the level rises by 1/ease per frame to 1; without one it stays for `hold` frames, then falls by
    1/ease per frame to 0. `level` starts where the caller says: 1 for a take (frames before its first face are
    at rest anyway), 0 live (the avatar starts on speech and eases onto the face)."""

    def __init__(self, hold: int = HOLD_FRAMES, ease: int = EASE_FRAMES, level: float = 1.0) -> None:
        self.hold, self.step_size = hold, 1.0 / max(ease, 1)
        self.level, self.gone = float(level), 0

    def step(self, present: bool) -> float:
        if present:
            self.gone = 0
            self.level = min(1.0, self.level + self.step_size)
        else:
            self.gone += 1
            if self.gone > self.hold:
                self.level = max(0.0, self.level - self.step_size)
        return self.level


def presence_weights(present: np.ndarray, hold: int = HOLD_FRAMES, ease: int = EASE_FRAMES) -> np.ndarray:
    """(N,) bool -> (N,) float32 in [0, 1]: how much of the driver's motion shows (0 = the rest pose), by
    `Presence` from level 1. Frames before the first face are at rest (their motion is the first face's)."""
    p = Presence(hold, ease)
    return np.array([p.step(bool(x)) for x in present], np.float32)


def fill_missing(parts: list[DrivingMotion | None]) -> DrivingMotion:
    """Per-frame motion or None -> every frame's motion: a gap holds the last face, leading gaps the first."""
    first = next((p for p in parts if p is not None), None)
    if first is None:
        raise ValueError("no frame has a face")
    filled, last = [], first
    for p in parts:
        last = p if p is not None else last
        filled.append(last)
    return DrivingMotion.cat(filled)


@torch.inference_mode()
def read_take(path: str | Path, cropper: FaceCropper, motion_extractor: torch.nn.Module,
              device: torch.device | str = "cpu", fps: int = FPS) -> DrivingTake:
    """The driving video at `path` -> its DrivingTake (raises NoDrivingFaceError when no frame shows a face)."""
    squares: list[tuple[np.ndarray, float] | None] = []  # pass 1 keeps no pixels: a square and landmarks a frame
    face_landmarks: list[np.ndarray | None] = []
    for frame in driving_faces(path, cropper, fps):
        squares.append(None if frame.crop is None else face_square(frame.crop))
        face_landmarks.append(None if frame.crop is None else frame.crop.landmarks)
    found = [q for q in squares if q is not None]
    if not found:
        raise NoDrivingFaceError(f"No face found in any frame of {Path(path).name}. Use a video in which a face is "
                                 "clearly visible, at least in part of it.")
    window = driving_window(found)
    per_frame: list[DrivingMotion | None] = [None] * len(squares)
    crops, landmarks, slots = [], [], []

    def run_batch() -> None:
        m = extract_motion(motion_extractor, np.stack(crops), landmarks, device=device, batch=MOTION_BATCH)
        for j, slot in enumerate(slots):
            per_frame[slot] = m[j].to("cpu")
        crops.clear()
        landmarks.clear()
        slots.clear()

    for i, image in enumerate(frames_at_output_rate(path, fps)):
        if i >= len(squares) or squares[i] is None:
            continue
        crops.append(crop_window(image, window))
        landmarks.append(face_landmarks[i])  # the eye / lip ratios do not depend on the crop's scale or place
        slots.append(i)
        if len(crops) == MOTION_BATCH:
            run_batch()
    if crops:
        run_batch()
    present = np.array([p is not None for p in per_frame], bool)
    return DrivingTake(fill_missing(per_frame), present, fps)
