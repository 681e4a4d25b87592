"""The interface every motion source implements (DiT, retargeting, JoyVASA).

A motion source turns 16 kHz mono float32 audio into motion rows (see `core.layout`) at 25 fps:
frame k covers samples [640 k, 640 (k + 1)). Sources are incremental so the engine can stream:
`push_audio` any block size, `pull` whatever frames are ready, `flush` at end of stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from core.timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME  # noqa: F401  (re-exported for sources)

JOYVASA_ENCODINGS = ("prefix", "fixed")  # JoyVASA's positional encodings (core/motion/joyvasa/denoiser.py)


@dataclass
class MotionSettings:
    """User-tunable settings; sources read what applies to them and ignore the rest."""

    expression_gain: float = 1.0
    head_gain: float = 1.0
    window: int = 25  # frames generated per DiT window (N)
    steps: int = 10  # diffusion sampling steps (windowed DiT)
    stream_steps: int = 4  # diffusion sampling steps per call of a streaming DiT (few-step trained)
    chunk: int = 0  # frames a streaming DiT emits per call (1..4; 0: the checkpoint's default)
    cfg_scale: float = 2.0
    seed: int = 0
    joyvasa_encoding: str | None = None  # JoyVASA: "prefix" | "fixed"; None: the checkpoint's (published: prefix)


@runtime_checkable
class MotionSource(Protocol):
    """What the engine, the offline renderer and the benches call. The two hooks are part of it (a source with
    nothing to do there implements them as no-ops) so no caller probes for them:
    `use_models(models)`: the renderer's LivePortraitModels (a source that drives the lip/eye MLPs keeps them);
    `bind_portrait(portrait)`: a portrait switch mid-stream, without losing the stream position.
    `last_aux`: per-frame values of the last pull (what `--dump-motion` saves; {} when a source has none)."""

    name: str
    last_aux: dict[str, np.ndarray]

    def use_models(self, models: object) -> None:
        """Take what this source needs from the renderer's networks (called once, before any reset)."""

    def bind_portrait(self, portrait: object) -> None:
        """The portrait changed mid-stream; keep the stream position (lip/eye tables follow the portrait)."""

    def reset(self, portrait: object | None = None) -> None:
        """Forget all audio and motion state; `portrait` is a `core.render.PreparedPortrait` or None."""

    def configure(self, settings: MotionSettings) -> None:
        """Apply new settings without losing the stream position."""

    def push_audio(self, samples: np.ndarray) -> None:
        """Append float32 mono 16 kHz samples (any length, may be 0)."""

    def pull(self) -> np.ndarray:
        """Return the motion rows (n, 70) float32 that became ready since the last pull (n may be 0)."""

    def flush(self) -> np.ndarray:
        """End of stream: return all remaining rows; the total is ceil(samples / 640)."""

    def latency_ms(self) -> float:
        """Algorithmic latency: audio that must arrive after a frame's own samples before it can be emitted."""
