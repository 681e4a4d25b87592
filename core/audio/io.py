"""Decode any audio file to float32 mono at the rate the models want, and write WAV files safely."""

from __future__ import annotations

import logging
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from core.timebase import SAMPLE_RATE

log = logging.getLogger(__name__)

class AudioLoadError(ValueError):
    """An audio file is missing, has no audio stream, or cannot be decoded."""


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis; output length is round(n * sr_out / sr_in)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly  # lazy: scipy.signal takes ~1 s to import

    ratio = Fraction(sr_out, sr_in)
    y = resample_poly(np.asarray(x, dtype=np.float32), ratio.numerator, ratio.denominator, axis=-1)
    n = round(x.shape[-1] * sr_out / sr_in)
    if y.shape[-1] < n:
        y = np.concatenate([y, np.zeros((*y.shape[:-1], n - y.shape[-1]), y.dtype)], axis=-1)
    return np.ascontiguousarray(y[..., :n], dtype=np.float32)


DC_OFFSET = 1e-3  # -60 dBFS: a clip whose mean is above this carries a DC offset, removed before the models
MIN_SECONDS = 0.5  # shortest clip worth rendering: about one syllable, 12 frames at 25 fps


class AudioTooShortError(AudioLoadError):
    """The audio holds less than MIN_SECONDS of sound."""


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio as the user gave it: (channels, n) float32 in [-1, 1] at its own rate.

    Why keep it: the models want 16 kHz mono, but the rendered mp4 should carry the user's audio untouched
    (a 44.1 kHz stereo recording stays 44.1 kHz stereo)."""

    samples: np.ndarray
    rate: int
    layout: tuple[str, ...] = ()  # FFmpeg channel names ("FL", "FR", "FC", "LFE", ...) when the file says them

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.rate

    def stereo(self) -> np.ndarray:
        """(<=2, n): mono and stereo as they are; more channels folded down to stereo by `downmix_matrix`."""
        if self.channels <= 2:
            return self.samples
        return (downmix_matrix(self.layout or default_layout(self.channels)) @ self.samples).astype(np.float32)

    def mono(self, sr: int = SAMPLE_RATE) -> np.ndarray:
        """Channels averaged, DC offset removed, resampled to `sr`: what the audio models take.

        Why the DC: a recording offset by a constant (cheap USB microphones, some converters) is heard the same
        but fed the speech models a different signal: with --motion dit / joyvasa, a 0.3 offset changed the
        motion rows by up to 0.48 / 2.4 (of 0.62 / 4.9), measured with the tiny synthetic weights; now 0. The mp4 keeps
        the file's samples untouched (`samples`). Offsets below DC_OFFSET (what any clip's mean is by chance)
        are left alone, so clean audio passes through bit for bit."""
        x = self.samples.mean(axis=0)
        dc = float(x.mean(dtype=np.float64)) if x.size else 0.0
        if abs(dc) > DC_OFFSET:
            x = x - np.float32(dc)
        return resample(x, self.rate, sr)

    def require(self, path: str | Path, min_seconds: float = MIN_SECONDS) -> AudioClip:
        """Raise AudioTooShortError unless the clip lasts at least `min_seconds`."""
        if self.duration < min_seconds:
            raise AudioTooShortError(
                f"{path} is too short ({self.duration * 1000:.0f} ms; at least {min_seconds:g} s is needed). "
                "Use a recording of the speech to animate."
            )
        return self


# the order of a WAV file's channels when it has no channel mask (and FFmpeg's default layouts up to 7.1)
WAV_ORDER = ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")


def default_layout(channels: int) -> tuple[str, ...]:
    """Channel names of a file that does not state them: the WAV order, unknown ("") past eight."""
    return WAV_ORDER[:channels] + ("",) * max(0, channels - len(WAV_ORDER))


_LEFT = {"FL", "FLC", "BL", "SL", "TFL", "TBL", "WL", "TSL", "BFL"}
_RIGHT = {"FR", "FRC", "BR", "SR", "TFR", "TBR", "WR", "TSR", "BFR"}
_FRONT = {"FL", "FR"}


def downmix_matrix(layout: tuple[str, ...] | list[str]) -> np.ndarray:
    """(2, channels) surround -> stereo, the usual ITU-R BS.775 fold-down: fronts at 1, centres and surrounds
    at -3 dB (0.707) into their side (centres into both), LFE dropped; unknown channels at 0.5 into both. Rows are
    scaled so a full-scale signal on every channel cannot clip.

    Why: averaging every channel into both sides (what the mp4 writer did) turned 5.1 into mono and let the LFE
    into the speech."""
    m = np.zeros((2, len(layout)), np.float32)
    for i, name in enumerate(layout):
        name = str(name).upper()
        if name.startswith("LFE"):
            continue
        gain = 1.0 if name in _FRONT else 0.7071
        if name in _LEFT:
            m[0, i] = gain
        elif name in _RIGHT:
            m[1, i] = gain
        elif name.endswith("C") or name == "MONO":  # FC, BC, TC, TFC, TBC...
            m[:, i] = 0.7071
        else:
            m[:, i] = 0.5
    return m / max(1.0, float(m.sum(axis=1).max()))


WAVE_PCM, WAVE_FLOAT, WAVE_EXTENSIBLE = 1, 3, 0xFFFE


def _riff_wav(path: Path) -> tuple[int, int, int, int, bytes]:
    """(format, channels, rate, bits, sample bytes) of a RIFF WAV, read chunk by chunk. Why not `wave`: before
    Python 3.12 it rejects WAVE_FORMAT_EXTENSIBLE (how DAWs write 24-bit and multichannel files) and float."""
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("no RIFF/WAVE header")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]  # a truncated last chunk keeps what is there
        if cid == b"fmt " and len(body) >= 16:
            tag, channels, rate = (int.from_bytes(body[i:i + n], "little") for i, n in ((0, 2), (2, 2), (4, 4)))
            bits = int.from_bytes(body[14:16], "little")
            if tag == WAVE_EXTENSIBLE and len(body) >= 26:
                tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID starts with the plain tag
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("data before the fmt chunk")
            return (*fmt, body)
        pos += 8 + size + (size & 1)
    raise ValueError("no fmt/data chunk")


def _decode_pcm_wav(path: Path) -> AudioClip:
    """A WAV without PyAV: what a machine without it (the lent GPU machine, a headless server) can still read.
    8-bit unsigned, 16/24/32-bit signed and 32/64-bit float samples, plain or WAVE_FORMAT_EXTENSIBLE."""
    try:
        tag, channels, rate, bits, raw = _riff_wav(path)
        kind = {(WAVE_PCM, 8): "u1", (WAVE_PCM, 16): "<i2", (WAVE_PCM, 24): "<i3", (WAVE_PCM, 32): "<i4",
                (WAVE_FLOAT, 32): "<f4", (WAVE_FLOAT, 64): "<f8"}.get((tag, bits))
        if kind is None or not channels or not rate:
            raise ValueError(f"format {tag}, {bits}-bit")
    except (OSError, ValueError) as exc:
        raise AudioLoadError(f"{path} is not a PCM WAV file this build can read without PyAV ({exc}). "
                             "Install PyAV (pip install av) or export the recording as 16-bit PCM WAV.") from exc
    width = bits // 8
    raw = raw[: len(raw) - len(raw) % (width * channels)]  # a truncated file: whole frames only
    if kind == "<i3":  # widen to 32 bits (low byte zero) so one integer path serves all
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        raw, kind = np.concatenate([np.zeros((len(b), 1), np.uint8), b], axis=1).tobytes(), "<i4"
    if kind == "u1":  # 8-bit PCM is unsigned: 128 is silence
        a = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == WAVE_FLOAT:
        a = np.frombuffer(raw, kind).astype(np.float32)
    else:
        a = np.frombuffer(raw, kind).astype(np.float32) / float(np.iinfo(kind).max)
    if not a.size:
        raise AudioLoadError(f"{path} contains no audio samples (an empty recording). Use a file with speech.")
    a = np.ascontiguousarray(a.reshape(-1, channels).T)
    return AudioClip(_finite_in_range(a, path) if tag == WAVE_FLOAT else a, int(rate))


def _finite_in_range(a: np.ndarray, path: Path) -> np.ndarray:
    """Float recordings may hold NaN/inf (a broken export) or peaks beyond +-1 (float headroom). Both are valid
    files but break what follows: the AAC encoder rejects NaN (a traceback at the end of a render) and a player
    clips the loud peaks. Non-finite samples become silence and a clip peaking above 1 is scaled down to peak 1
    (a gain, not a clip, so the waveform keeps its shape); each is logged. Integer formats never need this."""
    finite = np.isfinite(a)
    if not finite.all():
        log.warning("%s: %d non-finite samples (NaN/inf) replaced by silence", path, int(a.size - finite.sum()))
        a = np.where(finite, a, np.float32(0))
    peak = float(np.abs(a).max()) if a.size else 0.0
    if peak > 1.0:
        log.warning("%s: peaks at %.2f (above full scale); scaled down by that factor", path, peak)
        a = a / np.float32(peak)
    return a


def decode_audio(path: str | Path) -> AudioClip:
    """Any container/codec PyAV (FFmpeg) reads -> AudioClip at the file's own rate and channel count. Without
    PyAV installed, PCM WAV files still load (standard library) and anything else says what to install."""
    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"Audio file not found: {path}. Check the path.")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{path} is empty (0 bytes): the recording or copy did not finish. "
                             "Use the complete audio file.")
    try:
        import av
    except ImportError:
        if path.suffix.lower() in (".wav", ".wave"):
            return _decode_pcm_wav(path)
        raise AudioLoadError(f"Reading {path.name} needs PyAV, which is not installed: pip install av "
                             "(or convert the file to WAV, which loads without it).") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioLoadError(f"{path} has no audio track. Use a file with speech (wav, mp3, m4a, ...).")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            chunks = []
            float_input = False
            for frame in container.decode(stream):
                a = frame.to_ndarray()
                if a.dtype.kind == "u":  # 8-bit PCM is unsigned: 128 is silence
                    a = (a.astype(np.float32) - 128.0) / 128.0
                elif a.dtype.kind == "i":
                    a = a.astype(np.float32) / np.iinfo(a.dtype).max
                else:  # float formats (and every lossy codec's decoder output)
                    float_input = True
                channels = len(frame.layout.channels)
                layout = tuple(c.name for c in frame.layout.channels)
                a = a.reshape(channels, -1) if frame.format.is_planar else a.reshape(-1, channels).T
                chunks.append(a.astype(np.float32))
    except AudioLoadError:
        raise
    except Exception as exc:  # av raises many error types for broken files
        raise AudioLoadError(f"{path} is damaged or not an audio file (FFmpeg could not decode it). "
                             "Export the recording again as WAV, MP3 or M4A.") from exc
    if not chunks or not sum(c.shape[1] for c in chunks):
        raise AudioLoadError(f"{path} contains no audio samples (an empty recording). Use a file with speech.")
    samples = np.concatenate(chunks, axis=1)
    if float_input:
        samples = _finite_in_range(samples, path)
    if any(name in ("", "NONE") or name.startswith("USR") for name in layout):
        layout = ()  # unnamed channels (a WAV without a channel mask): AudioClip.stereo assumes the WAV order
    return AudioClip(np.ascontiguousarray(samples, dtype=np.float32), int(rate), layout)


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Any container/codec PyAV (FFmpeg) reads -> float32 mono in [-1, 1] at `sr` Hz (channels averaged)."""
    return decode_audio(path).mono(sr)


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
