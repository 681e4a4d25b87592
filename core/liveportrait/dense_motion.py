"""The dense-motion network: 21 sparse keypoint motions -> a dense 3-D deformation field and occlusion map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3d, UpBlock3d, coordinate_grid
from .config import DenseMotionConfig

KP_VARIANCE = 0.01


class Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = [in_features] + [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(DownBlock3d(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = [x]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        return skips


class Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            width = min(max_features, block_expansion * 2 ** (i + 1))
            in_ch = width if i == num_blocks - 1 else 2 * width
            blocks.append(UpBlock3d(in_ch, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            x = torch.cat((block(x), skip), dim=1)
        return F.relu(self.norm(self.conv(x)))


class Hourglass(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DenseMotionNetwork(nn.Module):
    def __init__(self, cfg: DenseMotionConfig, num_kp: int, feature_channel: int) -> None:
        super().__init__()
        self.num_kp = num_kp
        in_features = (num_kp + 1) * (cfg.compress + 1)
        self.hourglass = Hourglass(cfg.block_expansion, in_features, cfg.num_blocks, cfg.max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, cfg.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(cfg.compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters * cfg.reshape_depth, 1, kernel_size=7, padding=3)

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        feature = F.relu(self.norm(self.compress(feature)))
        b, c, d, h, w = feature.shape
        k = self.num_kp + 1
        identity = coordinate_grid(d, h, w, kp_source)  # (d, h, w, 3)
        # Where each driving-space voxel samples the source, per keypoint; slot 0 is "no motion" (background).
        shift = (kp_source - kp_driving).view(b, self.num_kp, 1, 1, 1, 3)
        sparse = torch.cat((identity.expand(b, 1, d, h, w, 3), identity + shift), dim=1)  # (b, k, d, h, w, 3)

        deformed = F.grid_sample(
            feature.unsqueeze(1).expand(b, k, c, d, h, w).reshape(b * k, c, d, h, w),
            sparse.reshape(b * k, d, h, w, 3),
            align_corners=False,
        ).view(b, k, c, d, h, w)

        def gaussian(kp: torch.Tensor) -> torch.Tensor:
            diff = identity.view(1, 1, d, h, w, 3) - kp.view(b, self.num_kp, 1, 1, 1, 3)
            return torch.exp(-0.5 * diff.pow(2).sum(-1) / KP_VARIANCE)

        heat = gaussian(kp_driving) - gaussian(kp_source)
        heat = torch.cat((heat.new_zeros(b, 1, d, h, w), heat), dim=1).unsqueeze(2)  # (b, k, 1, d, h, w)

        prediction = self.hourglass(torch.cat((heat, deformed), dim=2).view(b, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)  # (b, k, d, h, w)
        deformation = (sparse * mask.unsqueeze(-1)).sum(dim=1)  # (b, d, h, w, 3)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}
