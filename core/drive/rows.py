"""Face driving as Headcast motion rows (core/layout.py), so a face can go wherever speech motion goes (the
engine, live, the lite renderer) and be mixed with it per region (face + voice, issue 25 part 3).

Relative driving maps onto rows exactly: the expression row is the driver's change since its first frame
(exp_d,i - exp_d,0), scale and translation rows its ratio / change, and the pose row the Euler angles (pitch,
yaw, roll, in the renderer's convention) of R_d,i R_d,0^T R_s minus the portrait's own. The renderer then
rebuilds the same keypoints (and stitches them, when it stitches). What rows cannot carry is said, not dropped
silently: absolute motion, eye / lip retargeting, lip normalisation and a driving multiplier other than 1 need
the keypoint path (core/drive/keypoints.py); expression-friendly scaling is 1 under relative motion (the first
frame's keypoints are the portrait's own), so rows keep it.
"""

from __future__ import annotations

import math

import torch

from core import layout
from core.drive.config import DriveConfig
from core.drive.motion import DrivingMotion
from core.layout import EYE_KEYPOINTS, LIP_KEYPOINTS


def rows_problem(config: DriveConfig) -> str | None:
    """Why `config` cannot be expressed as motion rows, or None."""
    if not config.relative_motion:
        return "absolute motion"
    if config.retargeting or config.normalize_lip:
        return "eye / lip retargeting and lip normalisation"
    if config.multiplier != 1.0:
        return "a driving multiplier other than 1"
    return None


def euler_degrees(rot: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations in the renderer's convention (rotation_matrix: (Rz Ry Rx)^T) -> (B, 3) pitch, yaw,
    roll in degrees, the inverse of core.geometry.rotation_matrix for |yaw| < 90."""
    m = rot.transpose(1, 2)  # Rz(roll) Ry(yaw) Rx(pitch)
    pitch = torch.atan2(m[:, 2, 1], m[:, 2, 2])
    yaw = torch.asin((-m[:, 2, 0]).clamp(-1.0, 1.0))
    roll = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    return torch.stack((pitch, yaw, roll), dim=1) * (180.0 / math.pi)


@torch.inference_mode()
def motion_rows(motion: DrivingMotion, first: DrivingMotion, source_rot: torch.Tensor, source_angles: torch.Tensor,
                config: DriveConfig | None = None) -> torch.Tensor:
    """Driving motion -> (N, 70) rows relative to the driver's `first` frame, for a portrait with rotation
    `source_rot` (1, 3, 3) and angles `source_angles` (1, 3) degrees; the region picks the columns that move."""
    config = config or DriveConfig()
    problem = rows_problem(config)
    if problem:
        raise ValueError(f"{problem} cannot be expressed as motion rows; render through core.drive.keypoints")
    n = len(motion)
    rows = torch.zeros((n, layout.MOTION_DIM), dtype=torch.float32, device=motion.exp.device)
    exp = (motion.exp - first.exp).reshape(n, -1, 3)
    if config.region in ("lip", "eyes"):
        keep = torch.zeros_like(exp)
        idx = list(LIP_KEYPOINTS if config.region == "lip" else EYE_KEYPOINTS)
        keep[:, idx] = exp[:, idx]
        exp = keep
    if config.region != "pose":
        rows[:, layout.EXP] = exp.reshape(n, -1)
    if config.drives_pose:
        rot = (motion.R @ first.R.transpose(1, 2)) @ source_rot
        rows[:, layout.POSE] = euler_degrees(rot) - source_angles
        rows[:, layout.T] = motion.t - first.t
        rows[:, layout.T.start + 2] = 0.0  # tz is never used
    if config.region == "all":
        rows[:, layout.SCALE] = (motion.scale / first.scale).reshape(n) - 1.0
    return rows
