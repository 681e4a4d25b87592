"""W: warps the appearance volume f_s from source to driving keypoints -> a 2-D feature map for the generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SameBlock2d
from .config import WarpingConfig
from .dense_motion import DenseMotionNetwork


class WarpingNetwork(nn.Module):
    def __init__(self, cfg: WarpingConfig) -> None:
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion, cfg.num_kp, cfg.reshape_channel)
        width = cfg.block_expansion * 2**cfg.num_down_blocks
        self.third = SameBlock2d(cfg.max_features, width, leaky=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Note the official argument order: driving keypoints before source keypoints."""
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        warped = F.grid_sample(feature_3d, motion["deformation"], align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.view(b, c * d, h, w))) * motion["occlusion_map"]
        return {"out": out, "occlusion_map": motion["occlusion_map"], "deformation": motion["deformation"]}
