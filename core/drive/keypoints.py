"""Driving motion -> the portrait's driving keypoints, with the semantics of the official
`LivePortraitPipeline.execute` for an image source and a driving video (commit 1986663b), re-derived here:

* relative motion (the default): the head turns by the driver's rotation since its first frame
  (R = R_d,i R_d,0^T R_s), the expression moves by the driver's change (exp_s + exp_d,i - exp_d,0), scale and
  translation follow the driver's ratio / change; absolute motion copies the driver's rotation, translation and a
  fixed set of expression coordinates instead;
* the animation region picks what moves: all, exp (expression, scale kept), pose (rotation and translation),
  lip / eyes (only those expression keypoints, layout.LIP_KEYPOINTS / EYE_KEYPOINTS);
* expression-friendly scales every frame's offset from the first by sqrt(area of the portrait's keypoints) /
  sqrt(area of the first driving keypoints), areas being 3-D convex-hull volumes as the official computes them;
* then stitching, or eye / lip retargeting from the driver's landmark ratios (relative motion then starts from
  the portrait's own keypoints, as the official does), optional lip normalisation (the portrait's lips closed
  first when its lip ratio is above LIP_NORMALIZE_THRESHOLD), and last the driving multiplier.

tz never moves (the transform ignores it). A `Driver` keeps the first frame it sees as the reference, so it works
on a whole video at once or frame by frame (a camera); `reset()` starts a new take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.drive.config import ABSOLUTE_EXP_COORDS, ABSOLUTE_EXP_KEYPOINTS, LIP_NORMALIZE_THRESHOLD, DriveConfig
from core.drive.motion import DrivingMotion, eye_ratios, lip_ratios
from core.layout import EYE_KEYPOINTS, LIP_KEYPOINTS
from core.liveportrait import retarget_eye, retarget_lip, rotation_matrix, stitch, transform_keypoints


@dataclass
class DriveSource:
    """What driving needs of the portrait: its motion-extractor output, rotation, keypoints and landmarks."""

    kp: torch.Tensor  # (1, 21, 3)
    exp: torch.Tensor  # (1, 21, 3)
    scale: torch.Tensor  # (1, 1)
    t: torch.Tensor  # (1, 3)
    rot: torch.Tensor  # (1, 3, 3)
    x_s: torch.Tensor  # (1, 21, 3)
    landmarks: np.ndarray | None = None  # (203, 2) crop landmarks; None: no normalisation / retargeting

    @classmethod
    def of(cls, portrait) -> DriveSource:
        """From a PreparedPortrait (core/render.py): its angles in degrees give the rotation."""
        a = portrait.angles
        lmk = portrait.face.landmarks
        return cls(kp=portrait.kp, exp=portrait.exp, scale=portrait.scale.reshape(1, 1), t=portrait.t.reshape(1, 3),
                   rot=rotation_matrix(a[:, 0], a[:, 1], a[:, 2]), x_s=portrait.x_s,
                   landmarks=lmk if lmk is not None and len(lmk) == 203 else None)


@dataclass
class DriveMLPs:
    stitching: nn.Module
    eye: nn.Module
    lip: nn.Module


def _hull_volume(points: torch.Tensor) -> float:
    from scipy.spatial import ConvexHull  # once per take, not per frame

    return float(ConvexHull(points.detach().cpu().numpy().reshape(-1, 3)).volume)


class Driver:
    """Stateful driving-keypoint computer for one portrait and one take (reference = first frame seen)."""

    def __init__(self, source: DriveSource, mlps: DriveMLPs, config: DriveConfig | None = None) -> None:
        self.source = source
        self.mlps = mlps
        self.config = config or DriveConfig()
        self._eye_source = self._lip_source = None
        lmk = source.landmarks
        if lmk is not None:
            pts = np.asarray(lmk, np.float32)[None]
            dev = source.x_s.device
            self._eye_source = torch.from_numpy(eye_ratios(pts)).float().to(dev)  # (1, 2)
            self._lip_source = torch.from_numpy(lip_ratios(pts)).float().to(dev)  # (1, 1)
        self._lip_delta0 = self._normalized_lip()
        self.reset()

    def reset(self) -> None:
        self.first: DrivingMotion | None = None
        self._x0: torch.Tensor | None = None
        self._motion_multiplier = 1.0

    @torch.inference_mode()
    def _normalized_lip(self) -> torch.Tensor | None:
        c = self.config
        if not (c.normalize_lip and c.relative_motion) or self._lip_source is None:
            return None
        if float(self._lip_source[0, 0]) < LIP_NORMALIZE_THRESHOLD:
            return None
        closed = torch.cat((self._lip_source, torch.zeros_like(self._lip_source)), dim=1)
        return retarget_lip(self.mlps.lip, self.source.x_s, closed)

    def _raw(self, d: DrivingMotion) -> torch.Tensor:
        """Keypoints before stitching / retargeting: the region's motion, relative or absolute."""
        s, c, b = self.source, self.config, len(d)
        f = self.first
        exp = s.exp.expand(b, -1, -1)
        if c.relative_motion:
            rot = (d.R @ f.R.transpose(1, 2)) @ s.rot if c.drives_pose else s.rot.expand(b, -1, -1)
            moved = s.exp + (d.exp - f.exp)
            if c.region in ("all", "exp"):
                exp = moved
            elif c.region in ("lip", "eyes"):
                exp = exp.clone()
                idx = list(LIP_KEYPOINTS if c.region == "lip" else EYE_KEYPOINTS)
                exp[:, idx] = moved[:, idx]
            scale = s.scale * (d.scale / f.scale) if c.region == "all" else s.scale.expand(b, -1)
            t = s.t + (d.t - f.t) if c.drives_pose else s.t.expand(b, -1)
        else:
            rot = d.R if c.drives_pose else s.rot.expand(b, -1, -1)
            exp = exp.clone()
            if c.region in ("all", "exp"):
                exp[:, list(ABSOLUTE_EXP_KEYPOINTS)] = d.exp[:, list(ABSOLUTE_EXP_KEYPOINTS)]
                for k, axes in ABSOLUTE_EXP_COORDS:
                    exp[:, k, list(axes)] = d.exp[:, k, list(axes)]
            elif c.region in ("lip", "eyes"):
                idx = list(LIP_KEYPOINTS if c.region == "lip" else EYE_KEYPOINTS)
                exp[:, idx] = d.exp[:, idx]
            scale = s.scale.expand(b, -1)
            t = d.t if c.drives_pose else s.t.expand(b, -1)
        return transform_keypoints(s.kp.expand(b, -1, -1), rot, exp, scale, t)

    @torch.inference_mode()
    def keypoints(self, d: DrivingMotion) -> torch.Tensor:
        """Driving motion of the next frames (N, ...) -> driving keypoints (N, 21, 3) for the warping network."""
        s, c, mlps = self.source, self.config, self.mlps
        if self.first is None:
            self.first = d[0]
        x = self._raw(d)
        b = x.shape[0]
        x_s = s.x_s.expand(b, -1, -1)
        if c.relative_motion and c.driving_option == "expression-friendly":
            if self._x0 is None:
                self._x0 = x[:1].clone()
                self._motion_multiplier = float(np.sqrt(_hull_volume(s.x_s)) / np.sqrt(_hull_volume(self._x0)))
            x = (x - self._x0) * self._motion_multiplier + x_s
        if not c.retargeting:
            if c.stitching:
                x = stitch(mlps.stitching, x_s, x)
            if self._lip_delta0 is not None:
                x = x + self._lip_delta0
        else:
            base = x_s if c.relative_motion else x
            if c.eye_retargeting and self._eye_source is not None:
                cond = torch.cat((self._eye_source.expand(b, -1), d.c_eyes[:, :1]), dim=1)
                base = base + retarget_eye(mlps.eye, x_s, cond)
            if c.lip_retargeting and self._lip_source is not None:
                cond = torch.cat((self._lip_source.expand(b, -1), d.c_lip), dim=1)
                base = base + retarget_lip(mlps.lip, x_s, cond)
            x = stitch(mlps.stitching, x_s, base) if c.stitching else base
        if c.multiplier != 1.0:
            x = x_s + (x - x_s) * c.multiplier
        return x
