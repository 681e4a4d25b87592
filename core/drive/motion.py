"""Driving face crops -> driving motion: what LivePortrait's motion template holds per frame.

The motion extractor reads a 256x256 driving crop exactly as it reads the portrait (RGB in [0, 1]); each frame
gives scale, rotation, expression, translation, canonical keypoints and their transform, plus the eye-open
(left, right) and lip-open ratios from the crop's 203 landmarks (official `calc_eye_close_ratio` /
`calc_lip_close_ratio`: eyelid gap over eye width, lip gap over mouth width).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from core.liveportrait import KeypointInfo

# 203-landmark indices (upper, lower, corner, corner) of the official ratios
LEFT_EYE = (6, 18, 0, 12)
RIGHT_EYE = (30, 42, 24, 36)
LIPS = (90, 102, 48, 66)
RATIO_EPS = 1e-6
DEFAULT_EYE_RATIO = 0.35  # used when a crop has no 203 landmarks (the Haar fallback): open eyes ...
DEFAULT_LIP_RATIO = 0.0  # ... and a closed mouth


def _ratio(lmk: np.ndarray, idx: tuple[int, int, int, int]) -> np.ndarray:
    a, b, c, d = idx
    return (np.linalg.norm(lmk[:, a] - lmk[:, b], axis=1, keepdims=True)
            / (np.linalg.norm(lmk[:, c] - lmk[:, d], axis=1, keepdims=True) + RATIO_EPS))


def eye_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(N, 203, 2) landmarks -> (N, 2) left / right eye-open ratios."""
    return np.concatenate((_ratio(landmarks, LEFT_EYE), _ratio(landmarks, RIGHT_EYE)), axis=1)


def lip_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(N, 203, 2) landmarks -> (N, 1) lip-open ratios."""
    return _ratio(landmarks, LIPS)


def ratios_of(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (eye (N, 2), lip (N, 1)) ratios; frames without 203 landmarks get the defaults."""
    eyes = np.full((len(landmarks), 2), DEFAULT_EYE_RATIO, np.float32)
    lips = np.full((len(landmarks), 1), DEFAULT_LIP_RATIO, np.float32)
    for i, lmk in enumerate(landmarks):
        if lmk is not None and len(lmk) == 203:
            pts = np.asarray(lmk, np.float32)[None]
            eyes[i] = eye_ratios(pts)[0]
            lips[i] = lip_ratios(pts)[0]
    return eyes, lips


@dataclass
class DrivingMotion:
    """Per-frame driving motion, (N, ...) tensors: the official template's per-frame entries stacked."""

    scale: torch.Tensor  # (N, 1)
    R: torch.Tensor  # (N, 3, 3) rotation (row-vector convention, as rotation_matrix returns)
    exp: torch.Tensor  # (N, 21, 3)
    t: torch.Tensor  # (N, 3)
    kp: torch.Tensor  # (N, 21, 3) canonical keypoints
    x_s: torch.Tensor  # (N, 21, 3) transformed keypoints
    c_eyes: torch.Tensor  # (N, 2) left / right eye-open ratios
    c_lip: torch.Tensor  # (N, 1) lip-open ratio

    def __len__(self) -> int:
        return self.scale.shape[0]

    def __getitem__(self, index: slice | int) -> DrivingMotion:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return DrivingMotion(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> DrivingMotion:
        return DrivingMotion(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(parts: list[DrivingMotion]) -> DrivingMotion:
        return DrivingMotion(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(DrivingMotion)})

    @classmethod
    def from_info(cls, info: KeypointInfo, c_eyes: np.ndarray, c_lip: np.ndarray) -> DrivingMotion:
        dev = info.kp.device
        return cls(scale=info.scale, R=info.rot, exp=info.exp, t=info.t, kp=info.kp, x_s=info.transformed(),
                   c_eyes=torch.as_tensor(c_eyes, dtype=torch.float32, device=dev).reshape(-1, 2),
                   c_lip=torch.as_tensor(c_lip, dtype=torch.float32, device=dev).reshape(-1, 1))


@torch.inference_mode()
def extract_motion(motion_extractor: torch.nn.Module, crops: np.ndarray, landmarks: list[np.ndarray | None],
                   device: torch.device | str = "cpu", batch: int = 16) -> DrivingMotion:
    """(N, 256, 256, 3) uint8 RGB driving crops (+ their 203 landmarks or None) -> DrivingMotion, fp32."""
    if crops.ndim != 4 or crops.shape[1:] != (256, 256, 3):
        raise ValueError(f"driving crops must be (N, 256, 256, 3) uint8, got {crops.shape}")
    c_eyes, c_lip = ratios_of(landmarks)
    parts = []
    for a in range(0, len(crops), batch):
        x = torch.from_numpy(np.ascontiguousarray(crops[a:a + batch])).to(device).permute(0, 3, 1, 2).float()
        info = KeypointInfo.from_motion(motion_extractor(x.div_(255)))
        parts.append(DrivingMotion.from_info(info, c_eyes[a:a + batch], c_lip[a:a + batch]))
    return DrivingMotion.cat(parts)
