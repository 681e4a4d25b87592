"""The audio/motion timebase every part of Headcast shares: 16 kHz mono audio, 25 motion frames a second.

Frame k covers audio samples [640 k, 640 (k + 1)). These numbers are defined here and only here; everything
else imports them (a test greps the tree for stray literals).
"""

from __future__ import annotations

SAMPLE_RATE = 16_000  # Hz: what wav2vec2/HuBERT were trained on and what every audio path delivers
FPS = 25  # motion and video frames per second
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
FRAME_MS = 1000.0 / FPS  # 40.0


def frames_for_samples(n_samples: int) -> int:
    """Frames needed to cover `n_samples` (a partial last frame counts): ceil(n / 640)."""
    return -(-int(n_samples) // SAMPLES_PER_FRAME)


def samples_to_ms(n_samples: float) -> float:
    """Duration of `n_samples` at the shared sample rate, in milliseconds."""
    return float(n_samples) * 1000.0 / SAMPLE_RATE
