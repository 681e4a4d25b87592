"""Keypoint math around the networks: head-pose bins, rotations, the keypoint transform, stitching, retargeting.

Conventions follow the official code so that checkpoints mean the same thing: keypoints are row vectors
(B, 21, 3) that are right-multiplied by `rotation_matrix(...)` (core/geometry.py), the transpose of Rz @ Ry @ Rx.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.geometry import rotation_matrix


def headpose_bins_to_degrees(bins: torch.Tensor) -> torch.Tensor:
    """66 bin logits of 3 degrees each -> degrees (B,). A tensor already in degrees (B, 1) passes through."""
    if bins.ndim == 2 and bins.shape[1] == 1:
        return bins
    idx = torch.arange(bins.shape[1], dtype=bins.dtype, device=bins.device)
    return torch.sum(torch.softmax(bins, dim=1) * idx, dim=1) * 3 - 97.5


def transform_keypoints(
    kp: torch.Tensor, rot: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """x = scale * (kp @ rot + exp) + (tx, ty, 0). kp/exp (B, 21, 3) or flat (B, 63); tz is not used."""
    b = kp.shape[0]
    x = kp.reshape(b, -1, 3) @ rot + exp.reshape(b, -1, 3)
    x = x * scale.reshape(b, 1, 1)
    return torch.cat((x[..., :2] + t.reshape(b, 1, -1)[..., :2], x[..., 2:]), dim=-1)


def stitch(mlp: nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Correct driving keypoints so the pasted-back face lines up with the portrait (shoulders, neck)."""
    b, k, _ = x_d.shape
    delta = mlp(torch.cat((x_s.reshape(b, -1), x_d.reshape(b, -1)), dim=1))
    x = x_d + delta[:, : 3 * k].reshape(b, k, 3)
    return torch.cat((x[..., :2] + delta[:, 3 * k : 3 * k + 2].reshape(b, 1, 2), x[..., 2:]), dim=-1)


def retarget_lip(mlp: nn.Module, x_s: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
    """lip_ratio (B, 2) = [source lip-open ratio, target ratio] -> keypoint delta (B, 21, 3)."""
    b, k, _ = x_s.shape
    return mlp(torch.cat((x_s.reshape(b, -1), lip_ratio), dim=1)).reshape(b, k, 3)


def retarget_eye(mlp: nn.Module, x_s: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
    """eye_ratio (B, 3) = [source left, source right, target] eye-open ratios -> keypoint delta (B, 21, 3)."""
    b, k, _ = x_s.shape
    return mlp(torch.cat((x_s.reshape(b, -1), eye_ratio), dim=1)).reshape(b, k, 3)


@dataclass
class KeypointInfo:
    """The motion extractor's output made usable: degrees, rotation, (B, 21, 3) keypoints, transformed x."""

    pitch: torch.Tensor  # (B,) degrees
    yaw: torch.Tensor
    roll: torch.Tensor
    rot: torch.Tensor  # (B, 3, 3)
    kp: torch.Tensor  # canonical keypoints (B, 21, 3)
    exp: torch.Tensor  # expression deformation (B, 21, 3)
    scale: torch.Tensor  # (B, 1)
    t: torch.Tensor  # (B, 3)

    @classmethod
    def from_motion(cls, out: dict[str, torch.Tensor]) -> KeypointInfo:
        b = out["kp"].shape[0]
        pitch, yaw, roll = (headpose_bins_to_degrees(out[k]).reshape(b) for k in ("pitch", "yaw", "roll"))
        return cls(
            pitch=pitch, yaw=yaw, roll=roll, rot=rotation_matrix(pitch, yaw, roll),
            kp=out["kp"].reshape(b, -1, 3), exp=out["exp"].reshape(b, -1, 3),
            scale=out["scale"].reshape(b, 1), t=out["t"].reshape(b, 3),
        )

    def transformed(self) -> torch.Tensor:
        return transform_keypoints(self.kp, self.rot, self.exp, self.scale, self.t)
