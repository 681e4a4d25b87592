"""The fixed mouth-open projection used by the synthetic set and the lip-sync proxy.

LivePortrait's expression deltas are 21 implicit keypoints x (x, y, z). The lip keypoints are the ones
LivePortrait's and JoyVASA's "lip" region animates, `core.layout.LIP_KEYPOINTS` (6, 12, 14, 17, 19, 20, one
definition for the whole tree); we define mouth opening as the projection of the expression columns on the unit
vector with equal weight on the y component of those keypoints. Eye closure is the same construction on y of
`core.layout.EYE_KEYPOINTS` (11, 13, 15, 16, 18). These are fixed, documented choices, not learned; they only
need to be the same in `synth` and `evaluate`.
"""

from __future__ import annotations

import numpy as np

from core.layout import EXP, EYE_KEYPOINTS, LIP_KEYPOINTS, MOTION_DIM

MOUTH_KEYPOINTS = LIP_KEYPOINTS


def _direction(keypoints: tuple[int, ...], axis: int = 1) -> np.ndarray:
    v = np.zeros(MOTION_DIM, np.float32)
    for k in keypoints:
        v[EXP.start + 3 * k + axis] = 1.0
    return v / np.linalg.norm(v)


MOUTH_OPEN = _direction(MOUTH_KEYPOINTS)
EYE_CLOSE = _direction(EYE_KEYPOINTS)


def mouth_opening(motion: np.ndarray) -> np.ndarray:
    """(..., 70) motion rows -> (...) mouth opening."""
    return np.asarray(motion, np.float32) @ MOUTH_OPEN
