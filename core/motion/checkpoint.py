"""Motion-model checkpoints: one `.safetensors` file holding the weights, with the JSON config and the motion
normalisation statistics in its metadata (so the three can never be separated or mismatched).

Metadata keys: `format` ("headcast-motion-dit/1"), `config` (DiTConfig as JSON), `stats` (per-column mean/std
of the 70-d motion rows, JSON), `audio` (the audio feature settings the model was trained with, JSON), `kind`
(windowed | streaming, also inside `config`; files written before it existed are windowed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path
from core.errors import CheckpointError
from core.layout import MOTION_DIM
from core.motion.dit import DiTConfig
from core.motion.models import build_dit

FORMAT = "headcast-motion-dit/1"
FIX = "Use a motion model written by `python -m training` (train, finetune or export), or pick the " \
      "`retarget` motion source."


def installed_motion_model(weights_root: str | Path) -> Path:
    """Where `python -m training install` puts a trained model; the `dit` source loads it when none is given."""
    return Path(weights_root) / "motion" / "model.safetensors"


class MotionCheckpointError(CheckpointError):
    """A motion-model file is missing, damaged or does not match its own config (or the app's speech features);
    a CheckpointError, so the command line and the app report it."""


@dataclass
class MotionStats:
    """Per-column normalisation of the motion rows: the network works on (row - mean) / std."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(MOTION_DIM, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(MOTION_DIM, np.float32))

    def normalize(self, rows):
        return (rows - self._like(self.mean, rows)) / self._like(self.std, rows)

    def denormalize(self, rows):
        return rows * self._like(self.std, rows) + self._like(self.mean, rows)

    @staticmethod
    def _like(a: np.ndarray, ref):
        return torch.as_tensor(a, dtype=ref.dtype, device=ref.device) if isinstance(ref, torch.Tensor) else a

    @classmethod
    def fit(cls, rows: np.ndarray, min_std: float = 1e-4) -> MotionStats:
        return cls(rows.mean(0).astype(np.float32), np.maximum(rows.std(0), min_std).astype(np.float32))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> MotionStats:
        mean, std = np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32)
        if mean.shape != (MOTION_DIM,) or std.shape != (MOTION_DIM,) or (std <= 0).any():
            raise ValueError(f"normalisation stats must be {MOTION_DIM} means and positive stds")
        return cls(mean, std)


@dataclass
class MotionModel:
    model: torch.nn.Module  # MotionDiT or StreamingMotionDiT (config.kind)
    stats: MotionStats
    audio: dict = field(default_factory=dict)  # e.g. {"model": "...", "dim": 768, "lookahead_ms": 120}

    @property
    def config(self) -> DiTConfig:
        return self.model.config


def save_motion_model(path: str | Path, model: torch.nn.Module, stats: MotionStats, audio: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": FORMAT, "kind": model.config.kind, "config": json.dumps(model.config.to_dict()),
                "stats": json.dumps(stats.to_dict()), "audio": json.dumps(audio or {})}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_motion_model(path: str | Path, device: torch.device | str = "cpu") -> MotionModel:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MotionCheckpointError(f"Motion model not found: {path}. {FIX}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise MotionCheckpointError(f"{path} is not a readable safetensors file (damaged or truncated: "
                                    f"{exc.__class__.__name__}). {FIX}") from exc
    if metadata.get("format") != FORMAT:
        raise MotionCheckpointError(f"{path} is not a Headcast motion model (format {metadata.get('format')!r}, "
                                    f"expected {FORMAT!r}). {FIX}")
    try:
        config = DiTConfig.from_dict(json.loads(metadata["config"]))
        stats = MotionStats.from_dict(json.loads(metadata["stats"]))
        audio = json.loads(metadata.get("audio", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise MotionCheckpointError(f"{path}: its config or normalisation stats are invalid ({exc}). {FIX}") from exc
    model = build_dit(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise MotionCheckpointError(
            f"{path}: weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape {wrong[:3]}). {FIX}")
    model.load_state_dict(tensors)
    return MotionModel(model.to(device).eval(), stats, audio)
