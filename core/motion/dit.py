"""The motion DiT: a transformer decoder that denoises a window of motion frames, conditioned on speech.

Tokens: [condition token ; C previous motion frames ; N noisy frames]. Every token gets the sinusoid of its own
frame position (the reference design added one row of the table to every token, so it never saw frame order),
the condition token also carries the diffusion-step embedding. Cross-attention reads the audio features of the
same C + N frames through an alignment mask: motion frame f sees audio frames f - band .. f + band only.
The network predicts the clean motion x0 of the N frames. A learned null audio embedding replaces the audio for
classifier-free guidance (dropped during training with some probability).

`DiTConfig.kind` says which design a config (and so a checkpoint) describes: "windowed" (this module's
`MotionDiT`, for offline quality) or "streaming" (`core.motion.streaming_dit.StreamingMotionDiT`, causal, for
live use). Checkpoints written before `kind` existed carry none and load as windowed. `core.motion.models.build_dit`
makes either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.motion.diffusion import sinusoid_table

KINDS = ("windowed", "streaming")
MAX_LOOKAHEAD = 4  # audio frames (160 ms) a streaming DiT may read after a frame
MAX_CHUNK = 4  # frames a streaming DiT may emit per call


@dataclass
class DiTConfig:
    motion_dim: int = 70
    audio_dim: int = 768
    width: int = 512
    layers: int = 8
    heads: int = 8
    context: int = 10  # previous motion frames the window is conditioned on
    window: int = 65  # default number of generated frames (any N <= max_frames - context works)
    max_frames: int = 512  # longest context + window the position table covers
    align_band: int = 2  # audio frames on each side a motion frame may attend
    ff_mult: int = 4
    dropout: float = 0.1
    diffusion_steps: int = 50  # training schedule length
    kind: str = "windowed"  # windowed (MotionDiT) | streaming (StreamingMotionDiT)
    lookahead: int = 2  # streaming: audio frames after frame f its cross-attention reads (0..MAX_LOOKAHEAD)
    chunk: int = 1  # streaming: frames emitted per call by default (1..MAX_CHUNK)
    guidance_embed: bool = False  # streaming: a guidance-scale input folds CFG into one forward pass
    frame_audio: bool = False  # streaming: each frame's token also gets its own audio frames f..f+L directly

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DiT config fields {sorted(unknown)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"DiT kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0 <= self.lookahead <= MAX_LOOKAHEAD:
            raise ValueError(f"DiT lookahead {self.lookahead} frames is outside 0..{MAX_LOOKAHEAD}")
        if not 1 <= self.chunk <= MAX_CHUNK:
            raise ValueError(f"DiT chunk {self.chunk} frames is outside 1..{MAX_CHUNK}")
        if self.frame_audio and self.kind != "streaming":
            raise ValueError("DiT frame_audio is a streaming-design option; set kind to streaming or drop it")

    @classmethod
    def small(cls, audio_dim: int = 64) -> DiTConfig:
        """A narrow model of the same design, for tests and CPU demos."""
        return cls(audio_dim=audio_dim, width=64, layers=2, heads=4, window=25, max_frames=128, dropout=0.0)

    @classmethod
    def small_streaming(cls, audio_dim: int = 64) -> DiTConfig:
        """The small model in the causal streaming design (what `--synthetic-weights` stand-ins use)."""
        return cls(audio_dim=audio_dim, width=64, layers=2, heads=4, window=1, max_frames=32, dropout=0.0,
                   kind="streaming", guidance_embed=True)


class MotionDiT(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.motion_in = nn.Linear(c.motion_dim, c.width)
        self.audio_in = nn.Linear(c.audio_dim, c.width)
        self.null_audio = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.cond_token = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.context_flag = nn.Parameter(torch.zeros(1, 1, c.width))  # tells context frames from noisy frames
        self.step_mlp = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.register_buffer("positions", sinusoid_table(c.max_frames, c.width), persistent=False)
        self.register_buffer("step_table", sinusoid_table(c.diffusion_steps + 1, c.width), persistent=False)
        layer = nn.TransformerDecoderLayer(c.width, c.heads, c.width * c.ff_mult, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.layers)
        self.out_norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.motion_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def memory_mask(self, frames: int, device: torch.device) -> torch.Tensor:
        """(1 + frames, frames) bool, True = blocked. Row 0 is the condition token, which sees all audio."""
        f = torch.arange(frames, device=device)
        band = (f[:, None] - f[None, :]).abs() > self.config.align_band
        return torch.cat((torch.zeros(1, frames, dtype=torch.bool, device=device), band), dim=0)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, audio: torch.Tensor,
                drop_audio: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B, N, M) noisy motion, t (B,) integer steps, context (B, C, M) clean previous motion,
        audio (B, C + N, A) features of the same frames, drop_audio (B,) bool: use the null audio.
        -> x0 estimate (B, N, M)."""
        b, n, _ = x_t.shape
        frames = context.shape[1] + n
        if frames > self.config.max_frames:
            raise ValueError(f"context + window = {frames} frames exceeds max_frames {self.config.max_frames}")
        pos = self.positions[:frames]
        h = self.motion_in(torch.cat((context, x_t), dim=1)) + pos
        h[:, : context.shape[1]] += self.context_flag
        step = self.step_mlp(self.step_table[t])[:, None]
        tokens = torch.cat((self.cond_token.expand(b, -1, -1) + step, h + step), dim=1)
        memory = self.audio_in(audio)
        if drop_audio is not None:
            memory = torch.where(drop_audio[:, None, None], self.null_audio.expand_as(memory), memory)
        memory = memory + pos
        out = self.decoder(tokens, memory, memory_mask=self.memory_mask(frames, x_t.device))
        return self.out(self.out_norm(out[:, 1 + context.shape[1] :]))
