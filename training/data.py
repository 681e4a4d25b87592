"""Shards, the manifest, and deterministic window batches.

On disk (one folder): `manifest.json` + one `<name>.npz` per clip holding `motion (T, 70)` float32 rows in the
`core.layout` format, `audio (T, D)` float32 features at 25 fps (640 samples per frame) and `envelope (T,)`,
the RMS speech level per frame (the lip-sync proxy's reference). The manifest lists clips with their frame count
and split, the skipped inputs with the reason, and the feature dimension.

Batches are a pure function of (seed, step): the global batch of step s is drawn from a generator seeded with
(seed, s) and rank r of w takes rows r, r + w, ... (DistributedSampler-style). The data position to resume from
is therefore the step number alone, and a run resumed at any step sees exactly the batches it would have seen.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.timebase import SAMPLES_PER_FRAME

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class DataError(RuntimeError):
    """The dataset folder is missing, empty or inconsistent."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_shard(path: Path, motion: np.ndarray, audio: np.ndarray, envelope: np.ndarray) -> None:
    """Write one clip atomically (temp file + os.replace)."""
    if not (len(motion) == len(audio) == len(envelope)):
        raise ValueError(f"shard {path.name}: motion {len(motion)}, audio {len(audio)}, envelope {len(envelope)} "
                         "frames differ")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, motion=motion.astype(np.float32), audio=audio.astype(np.float32),
                 envelope=envelope.astype(np.float32))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"No {MANIFEST} in {root}. Build a dataset first: `python -m training preprocess VIDEOS "
                        f"--out {root}` or `python -m training synth --out {root}`.")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}). Delete it and re-run preprocess.") from exc
    return manifest


def write_manifest(root: Path, manifest: dict) -> None:
    manifest["version"] = MANIFEST_VERSION
    atomic_write_bytes(Path(root) / MANIFEST, json.dumps(manifest, indent=1).encode())


@dataclass
class Clip:
    name: str
    motion: np.ndarray  # (T, 70)
    audio: np.ndarray  # (T, D)
    envelope: np.ndarray  # (T,)


def load_clips(root: str | Path, split: str | None = None) -> list[Clip]:
    """All clips of `split` ('train', 'val' or None for all) held in memory (motion data is small)."""
    root = Path(root)
    manifest = read_manifest(root)
    clips = []
    for item in manifest.get("items", []):
        if split is not None and item.get("split", "train") != split:
            continue
        with np.load(root / item["file"]) as z:
            clips.append(Clip(item["name"], z["motion"], z["audio"], z["envelope"]))
    if not clips:
        raise DataError(f"{root} has no {split or ''} clips. Check the manifest's splits or add videos.")
    return clips


def motion_stats(clips: list[Clip], min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of the motion rows; std floored so constant columns stay finite."""
    rows = np.concatenate([c.motion for c in clips]).astype(np.float64)
    return rows.mean(0).astype(np.float32), np.maximum(rows.std(0), min_std).astype(np.float32)


@dataclass
class Batch:
    context: torch.Tensor  # (B, C, 70) normalised motion before the window
    target: torch.Tensor  # (B, N, 70) normalised motion to generate
    audio: torch.Tensor  # (B, C + N, D) features for context + window frames


class WindowSampler:
    """Windows of [context + N] frames; N drawn per batch from `lengths`; a pure function of (seed, step)."""

    def __init__(self, clips: list[Clip], mean: np.ndarray, std: np.ndarray, batch_size: int, context: int = 10,
                 lengths: tuple[int, ...] = (10, 25, 45, 65), seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle_audio: bool = False) -> None:
        need = context + min(lengths)
        self.clips = [c for c in clips if len(c.motion) >= need]
        if not self.clips:
            raise DataError(f"No clip has the {need} frames a window needs; use longer clips.")
        self.max_len = min(max(len(c.motion) for c in self.clips), context + max(lengths))
        self.lengths = tuple(n for n in lengths if context + n <= self.max_len)
        self.mean, self.std = mean, std
        self.batch_size, self.context, self.seed = batch_size, context, seed
        self.rank, self.world = rank, world
        self.shuffle_audio = shuffle_audio

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        n = int(rng.choice(self.lengths))
        total = self.context + n
        eligible = [i for i, c in enumerate(self.clips) if len(c.motion) >= total]
        g = self.batch_size * self.world
        clip_idx = rng.choice(eligible, size=g)
        starts = [int(rng.integers(0, len(self.clips[i].motion) - total + 1)) for i in clip_idx]
        # control runs: audio from another random window, so motion carries no information about it
        a_idx = rng.choice(eligible, size=g) if self.shuffle_audio else clip_idx
        a_starts = ([int(rng.integers(0, len(self.clips[i].motion) - total + 1)) for i in a_idx]
                    if self.shuffle_audio else starts)
        rows = range(self.rank, g, self.world)
        motion = np.stack([self.clips[clip_idx[j]].motion[starts[j]: starts[j] + total] for j in rows])
        audio = np.stack([self.clips[a_idx[j]].audio[a_starts[j]: a_starts[j] + total] for j in rows])
        motion = (motion - self.mean) / self.std
        m = torch.from_numpy(motion.astype(np.float32))
        return Batch(m[:, : self.context], m[:, self.context:], torch.from_numpy(audio.astype(np.float32)))


def frame_rms(samples: np.ndarray, n_frames: int | None = None, spf: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """RMS of each 25 fps frame's own samples [640 k, 640 (k + 1)): the speech envelope, one value per frame."""
    n = -(-len(samples) // spf) if n_frames is None else n_frames
    x = np.zeros(n * spf, np.float32)
    m = min(len(samples), n * spf)
    x[:m] = samples[:m]
    return np.sqrt(np.mean(x.reshape(n, spf).astype(np.float64) ** 2, axis=1)).astype(np.float32)
