"""F: the portrait crop -> a 3-D appearance feature volume f_s, computed once per portrait."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .config import AppearanceConfig


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, cfg: AppearanceConfig) -> None:
        super().__init__()
        if cfg.max_features != cfg.reshape_channel * cfg.reshape_depth:
            raise ValueError("max_features must equal reshape_channel * reshape_depth")
        self.cfg = cfg
        self.first = SameBlock2d(cfg.image_channel, cfg.block_expansion)
        widths = [min(cfg.max_features, cfg.block_expansion * 2**i) for i in range(cfg.num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.second = nn.Conv2d(widths[-1], cfg.max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(cfg.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(cfg.reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, 256, 256) in [0, 1] -> f_s (B, C, D, H, W)."""
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        return self.resblocks_3d(x.view(b, self.cfg.reshape_channel, self.cfg.reshape_depth, h, w))
