"""JoyVASA's 73 coefficients per frame -> LivePortrait motion: denormalisation by the motion template, the
wrapper's EMA on the pose, and our 70-number rows.

Our rows are that motion relative to the stream's first frame (exp and translation differences, angle
differences in degrees, relative scale), as JoyVASA's renderer uses it relative to its first driving frame (its
rotation composition R_i R_0^T R_s becomes an angle sum here).
"""

from __future__ import annotations

import numpy as np
import torch

from core import layout
from core.motion.joyvasa.files import MotionTemplate

EMA_ALPHA = 0.01


def postprocess(coef: np.ndarray, template: MotionTemplate, smooth: float | None = EMA_ALPHA,
                state: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(T, 73) coefficients -> denormalised motion (raw_* and, with `smooth`, EMA-smoothed smooth_*).

    `state` carries the EMA across calls (streaming); returns (arrays, new state)."""
    from core.geometry import rotation_matrix

    coef = np.asarray(coef, np.float32)
    exp = coef[:, :63] * template.std_exp + template.mean_exp
    pose = coef[:, 63:70] * (template.hi - template.lo) + template.lo  # scale, tx, ty, tz, pitch, yaw, roll

    def rot(p: np.ndarray) -> np.ndarray:
        angles = torch.from_numpy(np.ascontiguousarray(p[:, 4:7]))
        return rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()

    out = {"raw_exp": exp.reshape(-1, 21, 3), "raw_scale": pose[:, 0:1], "raw_t": pose[:, 1:4],
           "raw_pitch": pose[:, 4:5], "raw_yaw": pose[:, 5:6], "raw_roll": pose[:, 6:7], "raw_R": rot(pose)}
    if smooth is None:
        return out, state
    smoothed = np.empty_like(pose)
    a, b = np.float32(smooth), np.float32(1 - smooth)
    for k in range(len(pose)):
        state = pose[k].copy() if state is None else a * pose[k] + b * state
        smoothed[k] = state
    out.update({"smooth_scale": smoothed[:, 0:1], "smooth_t": smoothed[:, 1:4], "smooth_pitch": smoothed[:, 4:5],
                "smooth_yaw": smoothed[:, 5:6], "smooth_roll": smoothed[:, 6:7], "smooth_R": rot(smoothed)})
    return out, state


def absolute_rows(post: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 70): exp 63, pitch/yaw/roll, t 3, scale (smoothed pose when present), absolute."""
    p = "smooth_" if "smooth_scale" in post else "raw_"
    return np.concatenate((post["raw_exp"].reshape(len(post["raw_exp"]), -1), post[p + "pitch"], post[p + "yaw"],
                           post[p + "roll"], post[p + "t"], post[p + "scale"]), axis=1).astype(np.float32)


def relative_rows(absolute: np.ndarray, reference: np.ndarray, absolute_lips: bool = False) -> np.ndarray:
    """Absolute rows -> our layout relative to `reference` (the first frame): (T, 70).

    `absolute_lips` (JoyVASA's default "all" region): (T, 71) rows whose lip keypoints (`layout.LIP_KEYPOINTS`)
    hold the generated absolute expression and whose absolute-lip weight is 1, so the renderer applies
    exp_d = exp_s + (exp_i - exp_0) elsewhere and exp_d = exp_i on the lips, as JoyVASA's pipeline does."""
    rel = absolute - reference
    rel[:, layout.SCALE] = absolute[:, layout.SCALE] / reference[layout.SCALE] - 1
    if not absolute_lips:
        return rel
    rows = np.empty((len(rel), layout.MOTION_DIM + 1), np.float32)
    rows[:, : layout.MOTION_DIM] = rel
    for k in layout.LIP_KEYPOINTS:
        rows[:, layout.EXP.start + 3 * k : layout.EXP.start + 3 * k + 3] = absolute[:, 3 * k : 3 * k + 3]
    rows[:, layout.LIP_ABSOLUTE] = 1.0
    return rows
