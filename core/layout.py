"""The motion vector: one row of 70 float32 numbers per 25 fps frame, relative to the portrait's own pose,
optionally followed by a 71st number, the absolute-lip weight.

A zero row renders the portrait as it is. Columns:

    0..62   expression delta, 21 keypoints x (x, y, z), row-major: exp_d = exp_s + m[EXP].reshape(21, 3)
    63..65  head pitch, yaw, roll delta in degrees: angle_d = angle_s + m[POSE]
    66..68  translation delta (tx, ty, tz; tz is unused by LivePortrait's keypoint transform): t_d = t_s + m[T]
    69      relative scale change: scale_d = scale_s * (1 + m[SCALE])
    70      (optional) absolute-lip weight w: for the six lip keypoints LIP_KEYPOINTS only,
            exp_d[k] = (1 - w) exp_s[k] + m[EXP][k]; w = 0 (or a 70-column row) is the delta rule above.

Why relative: motion generated from speech must fit any portrait; deltas keep the portrait's identity,
pose and framing, and let gains (expression, head motion) scale motion without moving the rest pose.

Why an absolute-lip column: JoyVASA's own renderer (its default animation region "all",
`src/live_portrait_wmg_pipeline.py`) applies the generated expression relative to the first driving frame for
every keypoint except the lip keypoints 6, 12, 14, 17, 19, 20, which it replaces by the generated *absolute*
expression (all three coordinates), so the mouth shape is the model's and not the portrait's own plus a change.
A JoyVASA row therefore carries w = 1 and, in those 18 columns, the absolute expression. The rule is linear in
(m, w), so the expression gain g scales both (`apply_gains`) and gives exp_d = (1 - g) exp_s + g exp_generated
on the lips: g = 0 keeps the portrait's lips, g = 1 is JoyVASA's rule exactly. Any renderer (the full one, the
lite projection) gets the effective deltas from `expression_delta`.
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
LIP_ABSOLUTE = 70  # the optional absolute-lip weight column
ROW_DIMS = (MOTION_DIM, MOTION_DIM + 1)  # the two row widths a renderer accepts

# LivePortrait's implicit keypoints that move with the lips and the eyelids (LivePortrait's and JoyVASA's
# "lip" animation region and eye retargeting); every module that needs them imports them from here.
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)


def neutral(n_frames: int) -> np.ndarray:
    """Motion that reproduces the portrait unchanged."""
    return np.zeros((n_frames, MOTION_DIM), dtype=np.float32)


def apply_gains(motion: np.ndarray, expression_gain: float = 1.0, head_gain: float = 1.0) -> np.ndarray:
    """Scale expression and head motion (pose, translation, scale) in place and return the array. The
    absolute-lip weight scales with the expression, which blends the lips between portrait and generated."""
    motion[..., EXP] *= expression_gain
    motion[..., POSE] *= head_gain
    motion[..., T] *= head_gain
    motion[..., SCALE] *= head_gain
    if motion.shape[-1] > LIP_ABSOLUTE:
        motion[..., LIP_ABSOLUTE] *= expression_gain
    return motion


def driving_expression(source_exp, motion):
    """The driving expression (B, 21, 3) for rows (B, 70 | 71) and the portrait's expression (1 | B, 21, 3).

    NumPy arrays or torch tensors alike (indexing and arithmetic only); six in-place row updates when the rows
    carry the absolute-lip weight, nothing more."""
    b = motion.shape[0]
    exp = source_exp + motion[:, EXP].reshape(b, N_KEYPOINTS, 3)
    if motion.shape[1] > LIP_ABSOLUTE:
        w = motion[:, LIP_ABSOLUTE : LIP_ABSOLUTE + 1]
        for k in LIP_KEYPOINTS:
            exp[:, k] -= w * source_exp[:, k]
    return exp


def expression_delta(source_exp, motion):
    """Rows (B, 70 | 71) -> the plain expression deltas (B, 63) they mean for this portrait (exp_d - exp_s): a
    70-column row's own EXP columns; with the absolute-lip weight, the lips' delta to the generated shape."""
    return (driving_expression(source_exp, motion) - source_exp).reshape(motion.shape[0], -1)


def as_deltas(source_exp: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Rows (B, 70 | 71) -> (B, 70) plain delta rows meaning the same face for this portrait (NumPy), for a
    renderer that reads expression deltas only (the lite projection); 70-column rows come back unchanged."""
    if motion.shape[1] == MOTION_DIM:
        return motion
    out = motion[:, :MOTION_DIM].copy()
    out[:, EXP] = expression_delta(np.asarray(source_exp, out.dtype).reshape(1, N_KEYPOINTS, 3), motion)
    return out
