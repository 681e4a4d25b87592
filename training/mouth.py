"""The fixed mouth-open projection used by the synthetic set and the lip-sync proxy.

LivePortrait's expression deltas are 21 implicit keypoints x (x, y, z). Its lip retargeting and expression
editing move keypoints 14, 17, 19 and 20 (the lips) mostly along y when the mouth opens, so we define mouth
opening as the projection of the expression columns on the unit vector with equal weight on the y component
of those four keypoints. Eye closure is the same construction on y of keypoints 11, 13, 15, 16, 18. These are
fixed, documented choices, not learned; they only need to be the same in `synth` and `evaluate`.
"""

from __future__ import annotations

import numpy as np

from core.layout import EXP, MOTION_DIM

MOUTH_KEYPOINTS = (14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)


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
