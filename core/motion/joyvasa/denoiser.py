"""JoyVASA's denoiser: an 8-layer post-norm transformer decoder that predicts clean motion (x0).

Parameter names equal the checkpoint's `denoising_net.*` keys, so the published state dict loads strictly.
Why a module of its own rather than a configuration of `core.motion.dit.MotionDiT`: JoyVASA's network is a
`torch.nn.TransformerDecoder` (self-attention over motion, cross-attention to audio through a diagonal memory
mask) with a sinusoid step table (`core.motion.diffusion.sinusoid_table`) and a quirky positional term;
matching its key names and numerics inside our DiT would bend that model's design for one checkpoint.

Positional encoding: JoyVASA's code before 2025-12-09 added a single row of the sinusoid table (row = sequence
length) to every frame, a constant bias with no position information; the released weights were trained with
it, so `positional_encoding="prefix"` (default) reproduces it. `"fixed"` adds the per-frame sinusoid as
JoyVASA's HEAD does. In prefix mode the row is the trained length (n_prev + n_motions), also for the shorter
live windows, so the bias the weights expect stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.motion.diffusion import sinusoid_table
from core.motion.source import JOYVASA_ENCODINGS as POSITIONAL_ENCODINGS


@dataclass(frozen=True)
class JoyVASADenoiserConfig:
    motion_dim: int = 73
    n_motions: int = 100
    n_prev_motions: int = 10
    feature_dim: int = 256
    n_layers: int = 8  # JoyVASA's constructor default; the checkpoint's args.n_layers (6) is never used
    n_heads: int = 8
    mlp_ratio: int = 4
    step_table: int = 501  # the denoiser's own n_diff_steps default (500) + 1
    position_table: int = 600
    positional_encoding: str = "prefix"


class SinusoidTable(nn.Module):
    """Holds the `pe` buffer (checkpoint key `<name>.pe`)."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(length, dim)[None])


class JoyVASADenoiser(nn.Module):
    """(x_t (B,N,73), audio (B,N,D), prev motion (B,C,73), prev audio (B,C,D), step (B,)) -> x0 (B,C+N,73)."""

    def __init__(self, config: JoyVASADenoiserConfig) -> None:
        super().__init__()
        if config.positional_encoding not in POSITIONAL_ENCODINGS:
            raise ValueError(f"positional_encoding must be one of {POSITIONAL_ENCODINGS}")
        self.config = config
        self.positional_encoding = config.positional_encoding  # switchable after loading (same weights)
        d = config.feature_dim
        length = config.n_prev_motions + config.n_motions
        self.TE = SinusoidTable(config.step_table, d)
        self.PE = SinusoidTable(config.position_table, d)
        self.diff_step_map = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.feature_proj = nn.Linear(config.motion_dim, d)
        layer = nn.TransformerDecoderLayer(d, config.n_heads, d * config.mlp_ratio, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=False)
        self.transformer = nn.TransformerDecoder(layer, config.n_layers)
        self.motion_dec = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, config.motion_dim))
        # True = blocked: motion frame i attends audio frame i only
        self.register_buffer("alignment_mask", ~torch.eye(length, dtype=torch.bool))

    def step_embedding(self, step: torch.Tensor) -> torch.Tensor:
        """(B,) integer steps -> (B, D)."""
        return self.diff_step_map(self.TE.pe[0, step])

    def position_term(self, length: int) -> torch.Tensor:
        if self.positional_encoding == "fixed":
            return self.PE.pe[:, :length]
        row = self.config.n_prev_motions + self.config.n_motions  # the trained (buggy) constant row
        return self.PE.pe[:, row : row + 1]

    def forward(self, motion: torch.Tensor, audio: torch.Tensor, prev_motion: torch.Tensor,
                prev_audio: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        length = prev_motion.shape[1] + motion.shape[1]
        if length > self.alignment_mask.shape[0]:
            raise ValueError(f"window of {length} frames exceeds the trained {self.alignment_mask.shape[0]}")
        e = self.step_embedding(step).unsqueeze(1)
        h = self.feature_proj(torch.cat((prev_motion, motion), dim=1))
        h = h + self.position_term(length)
        h = h + e
        memory = torch.cat((prev_audio, audio), dim=1)
        mask = self.alignment_mask[:length, :length]
        h = self.transformer(h, memory, memory_mask=mask)
        return self.motion_dec(h)
