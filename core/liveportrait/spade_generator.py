"""G: the warped 2-D feature map -> the animated face image, through SPADE residual blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SpadeConfig


class SpectralNormConv2d(nn.Module):
    """A conv whose weight is `weight_orig / sigma`, sigma = u . (W v) with the STORED u and v.

    This is what PyTorch's spectral norm computes in eval mode; no power iteration runs at inference, so the
    checkpoint's u, v (not the true top singular vectors) define the weights.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_orig = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(out_ch))
        self.register_buffer("weight_v", torch.empty(in_ch * kernel_size * kernel_size))
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
        with torch.no_grad():
            self.weight_u.copy_(F.normalize(torch.randn(out_ch), dim=0))
            self.weight_v.copy_(F.normalize(torch.randn(self.weight_v.numel()), dim=0))

    def weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Instance norm whose scale and shift are predicted per pixel from the conditioning map."""

    def __init__(self, channels: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        act = self.mlp_shared(seg)
        return F.instance_norm(x) * (1 + self.mlp_gamma(act)) + self.mlp_beta(act)


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralNormConv2d(fin, fmid, 3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmid, fout, 3, padding=1)
        self.norm_0 = SPADE(fin, label_channels, hidden)
        self.norm_1 = SPADE(fmid, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, 1, bias=False)
            self.norm_s = SPADE(fin, label_channels, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return skip + dx


class SPADEDecoder(nn.Module):
    def __init__(self, cfg: SpadeConfig) -> None:
        super().__init__()
        ch = min(cfg.max_features, cfg.block_expansion * 2**cfg.num_down_blocks)  # 256 for the official model
        h = cfg.spade_hidden
        self.fc = nn.Conv2d(ch, 2 * ch, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ch, 2 * ch, ch, h))
        self.up_0 = SPADEResnetBlock(2 * ch, ch, ch, h)
        self.up_1 = SPADEResnetBlock(ch, cfg.out_channels, ch, h)
        if cfg.upscale > 1:
            self.conv_img = nn.Sequential(
                nn.Conv2d(cfg.out_channels, 3 * cfg.upscale**2, 3, padding=1), nn.PixelShuffle(cfg.upscale)
            )
        else:
            self.conv_img = nn.Conv2d(cfg.out_channels, 3, 3, padding=1)
        self.middle = [getattr(self, f"G_middle_{i}") for i in range(6)]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature (B, 256, 64, 64) -> image (B, 3, 512, 512) in (0, 1)."""
        x = self.fc(feature)
        for block in self.middle:
            x = block(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
