"""A synthetic dataset where motion is a known function of speech, so learning can be shown on a CPU.

Speech is real (espeak-ng, several voices, rates, pitches and texts, joined with random pauses). Motion rows
(`core.layout`) are built from it: mouth opening = the frame RMS envelope, smoothed, normalised per clip and
delayed by `lag` frames, along `training.mouth.MOUTH_OPEN`; blinks are random events along `EYE_CLOSE`; head
pose, translation and scale sway as smooth random noise independent of the audio. A model can only predict the
mouth from the audio features, so the held-out lip-sync proxy measures what it learnt from audio.

Features: `wav2vec2` (default): the app's own path, `core.audio.AudioFeatureExtractor` streamed exactly as
the app streams it (`AudioFeatureExtractor.streamed`, the live hops encoded in batches), with the installed
wav2vec2-base-960h, or with `synthetic_weights` the stand-in speech model (`AudioFeatureExtractor.stand_in`,
deterministic, no download), which the dataset records so that the trained model renders with the same stand-in.
`bands` (research only: the app cannot compute them, so such a model does not run there): log energies of 16
log-spaced bands of each frame's own 640 samples, a fixed affine to about unit range.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from core.layout import MOTION_DIM, POSE, SCALE, T
from core.timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from training.data import CLIPS_DIR, frame_rms, pack, save_shard, write_dataset_info, write_manifest_part
from training.mouth import EYE_CLOSE, MOUTH_OPEN

TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet at the station at nine o'clock tomorrow morning.",
    "Open the window, the room is far too warm today.",
    "Numbers like one hundred and twenty three are hard to say quickly.",
    "A talking head needs lips that move with the sound of the voice.",
    "Bring a map, a torch and a warm coat for the walk in the hills.",
    "She sells sea shells by the sea shore, and the shells are lovely.",
    "My favourite colours are blue, green and a deep shade of purple.",
    "Is this the right way to the museum, or should we turn left here?",
    "Peter piped a pack of pickled peppers at the party.",
    "Good evening, and welcome to the news at ten.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+m7", "en+f2")


@dataclass
class SynthConfig:
    clips: int = 48
    val_clips: int = 8
    lag: int = 2  # frames the mouth trails the speech envelope
    features: str = "wav2vec2"  # wav2vec2 (the app's features) | bands (cheap, research only)
    synthetic_weights: bool = False  # wav2vec2 features from the stand-in speech model instead of the installed one
    weights: str | None = None  # weights folder (None: the app's)
    audio_hop: int = 1  # frames per speech-model encode (1: the app's live features, exactly)
    lookahead_ms: float | None = None  # speech-feature lookahead (None: the app's default, AudioFeatureConfig)
    left_context_s: float | None = None  # speech-feature left context (None: the app's default)
    mouth_amplitude: float = 0.05
    blink_amplitude: float = 0.04
    seed: int = 0


def espeak(text: str, voice: str, rate: int, pitch: int, workdir: Path) -> np.ndarray:
    from core.audio.io import load_audio

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: `apt-get install espeak-ng` (or `make system-deps`).")
    path = workdir / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(path), text],
                   check=True, capture_output=True)
    return load_audio(path, sr=SAMPLE_RATE)


def make_speech(rng: np.random.Generator, workdir: Path) -> np.ndarray:
    """1-3 utterances with random voice/rate/pitch, separated and framed by random pauses."""
    parts = [np.zeros(int(rng.uniform(0.1, 0.6) * SAMPLE_RATE), np.float32)]
    for _ in range(int(rng.integers(1, 4))):
        text = TEXTS[int(rng.integers(len(TEXTS)))]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        parts.append(espeak(text, voice, int(rng.integers(120, 200)), int(rng.integers(30, 70)), workdir))
        parts.append(np.zeros(int(rng.uniform(0.2, 0.9) * SAMPLE_RATE), np.float32))
    return np.concatenate(parts)


def speech_model(cfg: SynthConfig):
    """The installed wav2vec2-base-960h, or the stand-in speech model with `synthetic_weights`."""
    from core.audio.features import STAND_IN_MODEL, AudioFeatureConfig, AudioFeatureExtractor

    streaming = {k: v for k, v in (("lookahead_ms", cfg.lookahead_ms), ("left_context_s", cfg.left_context_s))
                 if v is not None}  # recorded in the dataset, carried by the model, rebuilt by the app
    config = AudioFeatureConfig(**streaming)
    if cfg.synthetic_weights:
        return AudioFeatureExtractor.from_pretrained(STAND_IN_MODEL, config)
    from core.weights import WeightsRegistry

    folder = WeightsRegistry(cfg.weights).path("wav2vec2") / "wav2vec2-base-960h"
    return AudioFeatureExtractor.from_pretrained(folder, config)


def band_features(samples: np.ndarray, n_bands: int = 16) -> np.ndarray:
    """(T, n_bands) log band energies of each frame's own 640 samples (frame k: [640 k, 640 (k + 1)))."""
    n = -(-len(samples) // SAMPLES_PER_FRAME)
    x = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    x[: len(samples)] = samples
    spec = np.abs(np.fft.rfft(x.reshape(n, SAMPLES_PER_FRAME) * np.hanning(SAMPLES_PER_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1 / SAMPLE_RATE)
    edges = np.geomspace(80, 7600, n_bands + 1)
    bands = np.stack([spec[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
    return ((np.log10(bands + 1e-4) + 1.0) / 2.0).astype(np.float32)


def smooth_noise(rng: np.random.Generator, n: int, sigma: float, scale: float, dims: int = 1) -> np.ndarray:
    z = gaussian_filter1d(rng.normal(size=(n + 8 * int(sigma), dims)), sigma, axis=0)[4 * int(sigma):][:n]
    return (z / max(z.std(), 1e-8) * scale).astype(np.float32)


def make_motion(envelope: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Motion rows whose mouth follows the delayed envelope; blinks and head sway are random."""
    n = len(envelope)
    env = np.convolve(envelope, np.ones(3) / 3, mode="same")
    env = np.clip(env / max(np.percentile(env, 95), 1e-6), 0, 1)
    mouth = np.zeros(n, np.float32)
    mouth[cfg.lag:] = env[: n - cfg.lag]
    blink = np.zeros(n, np.float32)
    k = int(rng.integers(5, 60))
    while k < n:
        shape = np.array([0.4, 1.0, 1.0, 0.6, 0.2], np.float32)
        blink[k: k + len(shape)] = shape[: n - k]
        k += int(rng.integers(40, 120))
    m = np.zeros((n, MOTION_DIM), np.float32)
    m += cfg.mouth_amplitude * mouth[:, None] * MOUTH_OPEN + cfg.blink_amplitude * blink[:, None] * EYE_CLOSE
    m[:, :63] += smooth_noise(rng, n, 4.0, 0.002, 63)
    m[:, POSE] = smooth_noise(rng, n, 12.0, 3.0, 3)
    m[:, T] = smooth_noise(rng, n, 15.0, 0.01, 3)
    m[:, SCALE] = smooth_noise(rng, n, 20.0, 0.01, 1)[:, 0]
    return m


def build(out: str | Path, cfg: SynthConfig, progress: bool = True) -> Path:
    """Write `cfg.clips` train + `cfg.val_clips` val shards and the manifest into `out`."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extractor = speech_model(cfg) if cfg.features == "wav2vec2" else None
    if cfg.features not in ("wav2vec2", "bands"):
        raise ValueError(f"unknown features '{cfg.features}': use wav2vec2 or bands")
    rng = np.random.default_rng(cfg.seed)
    items = []
    dim = 0
    with tempfile.TemporaryDirectory() as tmp:
        total = cfg.clips + cfg.val_clips
        for i in tqdm(range(total), desc="synth", disable=not progress):
            speech = make_speech(rng, Path(tmp))
            envelope = frame_rms(speech)
            if extractor is None:
                feats = band_features(speech)
            else:  # as preprocess does: exactly the features the app streams live
                feats = extractor.streamed(speech, hop_frames=cfg.audio_hop).numpy()
            motion = make_motion(envelope, rng, cfg)
            name = f"synth_{i:04d}"
            save_shard(out / CLIPS_DIR / f"{name}.npz", motion, feats, envelope)
            dim = feats.shape[1]
            items.append({"name": name, "file": f"{CLIPS_DIR}/{name}.npz", "frames": len(motion),
                          "split": "val" if i >= cfg.clips else "train"})
    info = {"feature_dim": dim, "fps": FPS, "features": cfg.features, "synthetic": {"lag": cfg.lag, "seed": cfg.seed}}
    if extractor is not None:
        info.update(features="wav2vec2-stream", audio_config=dataclasses.asdict(extractor.config))
    write_dataset_info(out, info)
    write_manifest_part(out, items)
    pack(out)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SynthConfig()
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--clips", type=int, default=d.clips, help="training clips (each 1-3 spoken sentences)")
    p.add_argument("--val-clips", type=int, default=d.val_clips, help="held-out validation clips")
    p.add_argument("--lag", type=int, default=d.lag, help="frames the synthetic mouth trails the speech envelope")
    p.add_argument("--features", default=d.features, choices=["wav2vec2", "bands"],
                   help="wav2vec2: the app's speech features (a model trained on them runs in the app); bands: "
                        "cheap band energies, research only (the app cannot use such a model)")
    p.add_argument("--synthetic-weights", action="store_true",
                   help="use the stand-in speech model (no download) instead of the installed wav2vec2; the trained "
                        "model then renders with `python -m core render --synthetic-weights tiny --motion dit`")
    p.add_argument("--weights", default=None, help="weights folder (default: the app's, see `python -m core weights`)")
    p.add_argument("--audio-hop", type=int, default=d.audio_hop,
                   help="frames per speech-model encode (1: exactly the app's live features; as preprocess)")
    p.add_argument("--lookahead-ms", type=float, default=None,
                   help="speech-feature lookahead in ms (default: the app's, core.audio.features.AudioFeatureConfig)")
    p.add_argument("--left-context-s", type=float, default=None,
                   help="speech-feature left context in s (default: the app's)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the speech choices, blinks and head sway")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")


def main(args: argparse.Namespace) -> int:
    from core.audio.features import FeatureModelError
    from core.weights import MissingWeightsError

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = SynthConfig(clips=args.clips, val_clips=args.val_clips, lag=args.lag, features=args.features,
                      synthetic_weights=args.synthetic_weights, weights=args.weights, audio_hop=args.audio_hop,
                      lookahead_ms=args.lookahead_ms, left_context_s=args.left_context_s, seed=args.seed)
    try:
        out = build(args.out, cfg)
    except (MissingWeightsError, FeatureModelError) as exc:
        print(f"error: {exc} Or pass --synthetic-weights to use the stand-in speech model.", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as exc:  # espeak-ng missing, a dataset of other features in --out
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.clips} train + {cfg.val_clips} val clips to {out}")
    return 0
