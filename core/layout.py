"""The motion vector: one row of 70 float32 numbers per 25 fps frame, relative to the portrait's own pose.

A zero row renders the portrait as it is. Columns:

    0..62   expression delta, 21 keypoints x (x, y, z), row-major: exp_d = exp_s + m[EXP].reshape(21, 3)
    63..65  head pitch, yaw, roll delta in degrees: angle_d = angle_s + m[POSE]
    66..68  translation delta (tx, ty, tz; tz is unused by LivePortrait's keypoint transform): t_d = t_s + m[T]
    69      relative scale change: scale_d = scale_s * (1 + m[SCALE])

Why relative: motion generated from speech must fit any portrait; deltas keep the portrait's identity,
pose and framing, and let gains (expression, head motion) scale motion without moving the rest pose.
"""

from __future__ import annotations

import numpy as np

MOTION_DIM = 70
N_KEYPOINTS = 21
EXP = slice(0, 63)
POSE = slice(63, 66)
PITCH, YAW, ROLL = 63, 64, 65
T = slice(66, 69)
SCALE = 69


def neutral(n_frames: int) -> np.ndarray:
    """Motion that reproduces the portrait unchanged."""
    return np.zeros((n_frames, MOTION_DIM), dtype=np.float32)


def apply_gains(motion: np.ndarray, expression_gain: float = 1.0, head_gain: float = 1.0) -> np.ndarray:
    """Scale expression and head motion (pose, translation, scale) in place and return the array."""
    motion[..., EXP] *= expression_gain
    motion[..., POSE] *= head_gain
    motion[..., T] *= head_gain
    motion[..., SCALE] *= head_gain
    return motion
