"""The causal streaming motion DiT: a few frames per call, each from the past and a short audio look-ahead.

One call denoises k new frames (1 <= k <= MAX_CHUNK) that follow C clean context frames (the last C generated):

  tokens  = [C context frames ; k noisy frames], each with its frame's sinusoid, the diffusion-step embedding
            and (with `guidance_embed`) the guidance-scale embedding added (there is no separate condition token,
            so nothing in the network pools the whole window's audio);
  self-attention: frame f attends to frames <= f only (`causal`, a lower-triangular mask as in nanoGPT);
  cross-attention: frame f reads audio frames <= f + L (L = `config.lookahead`), never later ones;
  audio   = the features of the C + k frames and of the L frames after them (B, C + k + L, A).

So frame f's output depends on no audio after f + L and on no motion after f: emitting frame f needs the feature
stream to have produced frame f + L. Because of the causal masks the first j of k frames come out the same
whatever k is (training on k = MAX_CHUNK covers every k).

With `frame_audio` each frame's token also carries a linear map of its own audio frames f..f+L (the same
frames its cross-attention may read, so causality is unchanged): attention then only has to add the neighbours,
not first learn to find frame f's audio among C + k + L positions. Distillation turns it on (the teacher's
motion is almost a per-frame function of its speech features; docs/TRAINING.md has the measurements); older
checkpoints, without it, load as before.

Guidance is folded in: with `guidance_embed` the network takes the classifier-free guidance scale w as an input
and is trained to output the guided prediction u + w (c - u) itself (training/train.py), so sampling with
guidance costs one forward pass per step instead of two.

No key/value cache: a call holds C + k <= 14 tokens; docs/benchmarks.md has the measurement that a cache of the
context's keys could save at most the difference between a 12- and a 2-token forward.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.motion.diffusion import sinusoid_table
from core.motion.dit import DiTConfig

GUIDANCE_POSITION_SCALE = 100.0  # a guidance scale w is embedded like position w * 100 (w = 1.00 vs 1.01 differ)


def scalar_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) real values -> (B, dim): the sinusoid table's formula at real-valued positions."""
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=values.device) * (-math.log(10000.0) / dim))
    angle = values.float()[:, None] * GUIDANCE_POSITION_SCALE * freq
    out = torch.empty(values.shape[0], dim, device=values.device)
    out[:, 0::2] = torch.sin(angle)
    out[:, 1::2] = torch.cos(angle)
    return out


class StreamingMotionDiT(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.motion_in = nn.Linear(c.motion_dim, c.width)
        self.audio_in = nn.Linear(c.audio_dim, c.width)
        self.null_audio = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.context_flag = nn.Parameter(torch.zeros(1, 1, c.width))  # tells context frames from noisy frames
        self.step_mlp = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        if c.frame_audio:
            self.frame_audio_in = nn.Linear((c.lookahead + 1) * c.audio_dim, c.width)
        if c.guidance_embed:
            self.guide_mlp = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.register_buffer("positions", sinusoid_table(c.max_frames, c.width), persistent=False)
        self.register_buffer("step_table", sinusoid_table(c.diffusion_steps + 1, c.width), persistent=False)
        # visible[i, j]: position i may look at position j (frames and audio frames share one index)
        self.register_buffer("visible", torch.tril(torch.ones(c.max_frames, c.max_frames, dtype=torch.bool)),
                             persistent=False)
        layer = nn.TransformerDecoderLayer(c.width, c.heads, c.width * c.ff_mult, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.layers)
        self.out_norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.motion_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def masks(self, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(self_mask (F, F), audio_mask (F, F + L)), True = blocked: frame f sees frames <= f, audio <= f + L."""
        lookahead = self.config.lookahead
        self_mask = ~self.visible[:frames, :frames]
        audio_mask = ~self.visible[lookahead: lookahead + frames, : frames + lookahead]
        return self_mask, audio_mask

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, audio: torch.Tensor,
                drop_audio: torch.Tensor | None = None, guidance: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, k, M) noisy frames, t (B,) integer steps, context (B, C, M) clean previous frames, audio
        (B, C + k + L, A) features of those frames and the L after them, drop_audio (B,) bool: the null audio,
        guidance (B,) float: the guidance scale to fold in (None: 1, the plain conditional model).
        -> x0 estimate (B, k, M)."""
        b, k, _ = x_t.shape
        c = self.config
        frames = context.shape[1] + k
        if frames + c.lookahead > c.max_frames:
            raise ValueError(f"context + chunk + lookahead = {frames + c.lookahead} frames exceeds max_frames "
                             f"{c.max_frames}")
        if audio.shape[1] != frames + c.lookahead:
            raise ValueError(f"a streaming DiT call needs audio of {frames} + {c.lookahead} look-ahead frames, "
                             f"got {audio.shape[1]}")
        cond = self.step_mlp(self.step_table[t])[:, None]
        if c.guidance_embed:
            g = torch.ones(b, device=x_t.device) if guidance is None else guidance.to(x_t.device)
            cond = cond + self.guide_mlp(scalar_embedding(g, c.width))[:, None]
        h = self.motion_in(torch.cat((context, x_t), dim=1)) + self.positions[:frames] + cond
        h[:, : context.shape[1]] += self.context_flag
        if c.frame_audio:  # frame f's own audio f..f+L, added to its token (dropped audio adds nothing)
            own = torch.cat([audio[:, i: i + frames] for i in range(c.lookahead + 1)], dim=2)
            own = self.frame_audio_in(own)
            if drop_audio is not None:
                own = own * (~drop_audio)[:, None, None].to(own.dtype)
            h = h + own
        memory = self.audio_in(audio)
        if drop_audio is not None:
            memory = torch.where(drop_audio[:, None, None], self.null_audio.expand_as(memory), memory)
        memory = memory + self.positions[: frames + c.lookahead]
        self_mask, audio_mask = self.masks(frames)
        out = self.decoder(h, memory, tgt_mask=self_mask, memory_mask=audio_mask)
        return self.out(self.out_norm(out[:, context.shape[1]:]))
