"""Face + voice: which source drives which part of the face, mixed row by row (issue 25 part 3).

Both sources are motion rows (core/layout.py): speech from any motion source, the face from core/drive/rows.py.
A `Split` names the driver of each part: head (pose, translation, scale), eyes (the eyelid keypoints), mouth (the
lip keypoints) and the rest of the expression (brows, cheeks). Where the face drives a part, its rows are blended
over the speech rows by the face weight (core/drive/take.presence_weights: 1 with the face in view, easing to 0
when it leaves and back when it returns), so the avatar falls back to speech and idle motion without a jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import layout
from core.layout import EYE_KEYPOINTS, LIP_KEYPOINTS, N_KEYPOINTS

SOURCES = ("face", "voice")
PARTS = ("head", "eyes", "mouth", "rest")  # head: pose, translation, scale; rest: brows, cheeks and the like


def _exp_columns(keypoints) -> list[int]:
    return [3 * k + a for k in keypoints for a in range(3)]


HEAD_COLUMNS = list(range(layout.POSE.start, layout.POSE.stop)) + list(range(layout.T.start, layout.T.stop)) + [
    layout.SCALE]
EYE_COLUMNS = _exp_columns(EYE_KEYPOINTS)
MOUTH_COLUMNS = _exp_columns(LIP_KEYPOINTS)
REST_COLUMNS = _exp_columns(k for k in range(N_KEYPOINTS) if k not in EYE_KEYPOINTS and k not in LIP_KEYPOINTS)


@dataclass(frozen=True)
class Split:
    """Who drives each part: "face" or "voice". The default: head, eyes and expression follow the face, the mouth
    follows speech (exact lips even on a poor camera)."""

    head: str = "face"
    eyes: str = "face"
    mouth: str = "voice"
    rest: str = "face"

    def __post_init__(self) -> None:
        for part in PARTS:
            if getattr(self, part) not in SOURCES:
                raise ValueError(f"{part} must be driven by one of {', '.join(SOURCES)}, not {getattr(self, part)!r}")

    @classmethod
    def face_parts(cls, text: str) -> Split:
        """"head,eyes,rest" -> the face drives those parts, the voice the others (ValueError names a bad part)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise ValueError(f"unknown part {unknown[0]!r}" if unknown else "no part named")
        return cls(**{part: "face" if part in parts else "voice" for part in PARTS})

    def face_columns(self) -> np.ndarray:
        cols = {"head": HEAD_COLUMNS, "eyes": EYE_COLUMNS, "mouth": MOUTH_COLUMNS, "rest": REST_COLUMNS}
        return np.array(sorted(c for part, cs in cols.items() if getattr(self, part) == "face" for c in cs), int)


FACE_ONLY = Split(mouth="face")  # the face drives everything, the mouth too (speech only clocks the rows)


def mix_rows(face: np.ndarray, voice: np.ndarray, face_weight: np.ndarray, split: Split = Split(),
             source_exp: np.ndarray | None = None) -> np.ndarray:
    """(N, 70) face rows + (N, 70 | 71) speech rows + (N,) face weights in [0, 1] -> (N, 70) mixed rows.

    Speech rows with the absolute-lip column are first turned into plain deltas for this portrait
    (`source_exp`, (21, 3), is then required), so both sources mean the same thing column by column."""
    if voice.shape[1] != layout.MOTION_DIM:
        if source_exp is None:
            raise ValueError("speech rows with the absolute-lip column need the portrait's expression (source_exp)")
        voice = layout.as_deltas(np.asarray(source_exp, np.float32).reshape(1, N_KEYPOINTS, 3), voice)
    if face.shape != voice.shape or face_weight.shape != (face.shape[0],):
        raise ValueError(f"face rows {face.shape}, speech rows {voice.shape} and weights {face_weight.shape} "
                         "must cover the same frames")
    out = voice.astype(np.float32, copy=True)
    cols = split.face_columns()
    w = np.clip(face_weight, 0.0, 1.0).astype(np.float32)[:, None]
    out[:, cols] = voice[:, cols] * (1 - w) + face[:, cols] * w  # exact at 0 and 1
    return out
