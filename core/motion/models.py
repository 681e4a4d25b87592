"""Which network a DiT config describes: `build_dit` (kept apart from both designs so neither imports the other)."""

from __future__ import annotations

from torch import nn

from core.motion.dit import DiTConfig, MotionDiT
from core.motion.streaming_dit import StreamingMotionDiT


def build_dit(config: DiTConfig) -> nn.Module:
    """MotionDiT (kind windowed) or StreamingMotionDiT (kind streaming)."""
    config.validate()
    return StreamingMotionDiT(config) if config.kind == "streaming" else MotionDiT(config)
