"""Decode any audio file to float32 mono at the rate the models want, and write WAV files safely."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from core.atomic import atomic_path
from core.timebase import SAMPLE_RATE


class AudioLoadError(ValueError):
    """An audio file is missing, has no audio stream, or cannot be decoded."""


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis; output length is round(n * sr_out / sr_in)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    ratio = Fraction(sr_out, sr_in)
    y = resample_poly(np.asarray(x, dtype=np.float32), ratio.numerator, ratio.denominator, axis=-1)
    n = round(x.shape[-1] * sr_out / sr_in)
    if y.shape[-1] < n:
        y = np.concatenate([y, np.zeros((*y.shape[:-1], n - y.shape[-1]), y.dtype)], axis=-1)
    return np.ascontiguousarray(y[..., :n], dtype=np.float32)


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Any container/codec PyAV (FFmpeg) reads -> float32 mono in [-1, 1] at `sr` Hz (channels averaged)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"Audio file not found: {path}. Check the path.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioLoadError(f"{path} has no audio track. Use a file with speech (wav, mp3, m4a, ...).")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            chunks = []
            for frame in container.decode(stream):
                a = frame.to_ndarray()
                if a.dtype.kind in "iu":
                    a = a.astype(np.float32) / np.iinfo(a.dtype).max
                if frame.format.is_planar:
                    a = a.reshape(len(frame.layout.channels), -1).mean(axis=0)
                else:
                    a = a.reshape(-1, len(frame.layout.channels)).mean(axis=1)
                chunks.append(a.astype(np.float32))
    except AudioLoadError:
        raise
    except Exception as exc:  # av raises many error types for broken files
        raise AudioLoadError(f"Cannot decode audio file {path} ({exc.__class__.__name__}). "
                             "Convert it to WAV or MP3 and try again.") from exc
    if not chunks:
        raise AudioLoadError(f"{path} contains no audio samples.")
    return resample(np.concatenate(chunks), int(rate), sr)


def save_wav(path: str | Path, samples: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """16-bit PCM mono WAV, written to a temporary name and renamed when complete."""
    path = Path(path)
    pcm = (np.clip(np.asarray(samples, np.float32), -1, 1) * 32767).round().astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path
