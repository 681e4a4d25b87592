"""Head-pose geometry shared by the renderer and the motion sources: Euler angles in degrees -> rotation.

It lives below both (the renderer's keypoint math and JoyVASA's post-processing use it) so that speech and
motion code never import the renderer's networks. Convention (LivePortrait's, so checkpoints mean the same
thing): keypoints are row vectors right-multiplied by `rotation_matrix(...)`, the transpose of Rz Ry Rx.
"""

from __future__ import annotations

import math

import torch


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Angles in degrees, shape (B,) or (B, 1) -> (B, 3, 3) = (Rz(roll) Ry(yaw) Rx(pitch))^T."""
    p, y, r = (a.reshape(-1) / 180 * math.pi for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    rx = torch.stack([one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos()], 1).view(-1, 3, 3)
    ry = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(-1, 3, 3)
    rz = torch.stack([r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return (rz @ ry @ rx).transpose(1, 2)
