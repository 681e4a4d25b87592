"""Motion rows -> atlas coordinates: mouth opening, eye openness and a 2D similarity for the head.

Why a projection: every motion source (retarget, DiT, JoyVASA) emits the same 70-number rows, but the atlas only
holds the face at rest over a grid of lip x eye ratios. The expression columns are read along two directions
taken from the retarget source's own curves for this portrait: `a`, how the keypoints move when the mouth opens
(lip ratio 0 -> 1), and `b`, how they move when the eyes close. Each curve's response along both directions is
tabulated, and the pair (lip ratio, eye ratio) whose curves reproduce a row's two readings is found by a few
fixed-point steps (the curves are piecewise linear, so a retarget row comes back exactly). Any other expression
(smiles, brows, DiT's full expression space) has no atlas entry and is ignored: lite mode cannot show it.

Head motion (pose, translation, scale columns) becomes the 2D similarity that best maps the portrait's resting
keypoints (x, y) to where the same keypoints go under that pose (least squares, closed form in complex numbers),
expressed in the canvas ROI's pixels. This is exact for roll, translation and scale and a first-order
approximation for small pitch / yaw; large turns need the full renderer.
"""

from __future__ import annotations

import numpy as np
import torch

from core import layout
from core.geometry import rotation_matrix
from core.lite.atlas import EYE_RANGE, LIP_RANGE, Atlas

FIXED_POINT_STEPS = 4
STILL = 1e-6  # head columns below this are "no head motion": the warp is skipped


def _increasing(values: np.ndarray) -> np.ndarray:
    """Force a response curve to be non-decreasing so it can be inverted with np.interp."""
    return np.maximum.accumulate(values)


class MotionProjection:
    def __init__(self, atlas: Atlas, portrait) -> None:
        spec = atlas.spec
        n_lip, n_eye = len(atlas.lip_curve), len(atlas.eye_curve)
        self.lip_ratios = np.linspace(0, LIP_RANGE, n_lip)
        self.eye_ratios = np.linspace(0, EYE_RANGE, n_eye)
        rest = atlas.lip_curve[0].astype(np.float64)  # mouth closed, eyes open: what a silent frame shows
        d_lip = atlas.lip_curve.astype(np.float64) - rest
        d_eye = atlas.eye_curve.astype(np.float64) - rest
        self.rest = rest
        a = d_lip[-1]
        b = d_eye[0]
        self.a = a / max(np.linalg.norm(a), 1e-12)
        self.b = b / max(np.linalg.norm(b), 1e-12)
        self.lip_on_a, self.lip_on_b = d_lip @ self.a, d_lip @ self.b  # (n_lip,)
        self.eye_on_a, self.eye_on_b = d_eye @ self.a, d_eye @ self.b  # (n_eye,)
        # inverses: reading along a -> lip ratio (increasing); reading along b -> eye ratio (b grows as eyes close)
        self._lip_x = _increasing(self.lip_on_a)
        self._eye_x = _increasing(self.eye_on_b[::-1])
        self._eye_y = self.eye_ratios[::-1]
        self.max_lip, self.open_eye = spec.max_lip_ratio, spec.open_eye_ratio
        self.lip_steps, self.eye_steps = spec.lip_levels - 1, spec.eye_levels - 1
        # head: the portrait's resting keypoints and how crop pixels map to the ROI
        self.kp = portrait.kp[0].detach().cpu().double().numpy()  # (21, 3) canonical
        self.exp = portrait.exp[0].detach().cpu().double().numpy()
        self.scale = float(portrait.scale.reshape(-1)[0])
        self.t = portrait.t[0].detach().cpu().double().numpy()
        self.angles = portrait.angles[0].detach().cpu().double().numpy()
        xs = portrait.x_s[0, :, :2].detach().cpu().double().numpy()
        self.zs = xs[:, 0] + 1j * xs[:, 1]
        self.zs_mean = self.zs.mean()
        self.zs_c = self.zs - self.zs_mean
        self.zs_norm = float(np.sum(np.abs(self.zs_c) ** 2))
        size = portrait.face.crop.shape[0]
        self.half = size / 2
        crop_from_canvas = np.vstack((portrait.face.matrix, (0, 0, 1)))
        y0, _, x0, _ = portrait.roi
        canvas_from_roi = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        self._crop_from_roi = crop_from_canvas @ canvas_from_roi
        self._roi_from_crop = np.linalg.inv(self._crop_from_roi)

    # ------------------------------------------------------------------ expression
    def ratios(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 70) rows -> (lip ratio, eye ratio) per row, each within the retarget tables' ranges."""
        d = motion[:, layout.EXP].astype(np.float64) - self.rest
        on_a, on_b = d @ self.a, d @ self.b
        eye = np.full(len(motion), self.open_eye)
        lip = np.zeros(len(motion))
        for _ in range(FIXED_POINT_STEPS):
            lip = np.interp(on_a - np.interp(eye, self.eye_ratios, self.eye_on_a), self._lip_x, self.lip_ratios)
            eye = np.interp(on_b - np.interp(lip, self.lip_ratios, self.lip_on_b), self._eye_x, self._eye_y)
        return lip, eye

    def positions(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional grid positions (lip in [0, lip_levels - 1], eye in [0, eye_levels - 1]); outside the
        atlas (a wider mouth than its top level) they clamp to the edge."""
        lip, eye = self.ratios(motion)
        lip_pos = np.clip(lip / self.max_lip, 0, 1) * self.lip_steps
        eye_pos = np.clip(eye / self.open_eye, 0, 1) * self.eye_steps if self.eye_steps else np.zeros_like(eye)
        # values a hair off a level (float32 rows) snap to it, so grid points reproduce the atlas exactly
        for pos in (lip_pos, eye_pos):
            near = np.round(pos)
            snap = np.abs(pos - near) < 1e-4
            pos[snap] = near[snap]
        return lip_pos, eye_pos

    # ------------------------------------------------------------------ head
    def affines(self, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 70) rows -> (B, 2, 3) forward affines in ROI pixels (cv2.warpAffine) and a (B,) bool 'moves'."""
        head = np.concatenate((motion[:, layout.POSE], motion[:, layout.T], motion[:, layout.SCALE:]), axis=1)
        moves = np.abs(head).max(axis=1) > STILL
        out = np.zeros((len(motion), 2, 3))
        out[:, 0, 0] = out[:, 1, 1] = 1
        if not moves.any():
            return out, moves
        m = motion[moves].astype(np.float64)
        angles = torch.from_numpy(self.angles + m[:, layout.POSE])  # float64: the fit is exact for tests
        rot = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()
        x = (self.kp @ rot + self.exp) * (self.scale * (1 + m[:, layout.SCALE]))[:, None, None]
        zd = (x[..., 0] + self.t[0] + m[:, None, layout.T.start]) + 1j * (x[..., 1] + self.t[1]
                                                                           + m[:, None, layout.T.start + 1])
        zd_mean = zd.mean(axis=1)
        a = (np.conj(self.zs_c)[None] * (zd - zd_mean[:, None])).sum(axis=1) / self.zs_norm
        b = zd_mean - a * self.zs_mean
        # keypoint units -> crop pixels: u = (z + 1 + i) * size / 2, so u' = a u + (b + (1 + i)(1 - a)) size / 2
        shift = (b + (1 + 1j) * (1 - a)) * self.half
        crop = np.zeros((len(m), 3, 3))
        crop[:, 0, 0], crop[:, 0, 1], crop[:, 0, 2] = a.real, -a.imag, shift.real
        crop[:, 1, 0], crop[:, 1, 1], crop[:, 1, 2] = a.imag, a.real, shift.imag
        crop[:, 2, 2] = 1
        out[moves] = (self._roi_from_crop @ crop @ self._crop_from_roi)[:, :2]
        return out, moves
