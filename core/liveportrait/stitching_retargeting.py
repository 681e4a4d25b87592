"""S: small MLPs on flattened keypoints: stitching (shoulders stay put), lip and eye retargeting."""

from __future__ import annotations

import torch
from torch import nn

from .config import MLPConfig


class StitchingRetargetingNetwork(nn.Module):
    """Linear layers at `mlp.0, mlp.2, ...` with ReLUs between them, as in the official files."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        sizes = (cfg.input_size, *cfg.hidden_sizes)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], cfg.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
