"""M: an image -> canonical keypoints, head-pose bin logits, translation, expression and scale."""

from __future__ import annotations

import torch
from torch import nn

from .config import MotionExtractorConfig
from .convnextv2 import ConvNeXtV2


class MotionExtractor(nn.Module):
    """Wraps the backbone as `detector`, the prefix every key of the official file carries."""

    def __init__(self, cfg: MotionExtractorConfig) -> None:
        super().__init__()
        self.detector = ConvNeXtV2(cfg)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (B, 3, 256, 256) in [0, 1] -> pitch/yaw/roll (B, 66) logits, t (B, 3), exp and kp (B, 63), scale."""
        return self.detector(image)
