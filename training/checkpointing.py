"""Training checkpoints that resume exactly: weights, optimiser, scheduler, EMA, data position and RNG states.

Files are `ckpt-<step>.pt` written atomically (core.atomic); only the newest `keep` are kept. The data position is
the step number (batches are a pure function of (seed, step), see `training.data`). `load_base` reads the start of
a fine-tuning run or an evaluation: a training checkpoint's EMA weights or an exported motion model.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path

PATTERN = re.compile(r"ckpt-(\d+)\.pt$")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(folder: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in Path(folder).glob("ckpt-*.pt") if (m := PATTERN.search(p.name))]
    return [p for _, p in sorted(found)]


def step_of(path: Path) -> int:
    return int(PATTERN.search(Path(path).name).group(1))


def latest(folder: Path) -> Path | None:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


def save(folder: Path, step: int, state: dict, keep: int = 3) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load(path: Path) -> dict:
    try:
        # our own files: they hold numpy RNG state and config dicts, so full unpickling is needed
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RuntimeError(f"Cannot read training checkpoint {path} ({exc.__class__.__name__}: {exc}). "
                           "It may be truncated; delete it to resume from the previous one.") from exc


def load_base(path: str | Path) -> tuple[dict, dict, tuple[np.ndarray, np.ndarray] | None]:
    """-> (state_dict, DiTConfig fields, (mean, std)). A `.pt` is a training checkpoint (its EMA weights), else an
    exported `.safetensors` motion model (`core.motion.checkpoint`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model {path} not found. Pass a training checkpoint (OUT/checkpoints/ckpt-*.pt) or "
                                "an exported .safetensors motion model (OUT/model.safetensors).")
    if path.is_file() and path.suffix == ".pt":
        state = load(path)
        return dict(state["ema"]["shadow"]), dict(state["model_config"]), (state["mean"], state["std"])
    from core.motion.checkpoint import load_motion_model

    loaded = load_motion_model(path)
    return (loaded.model.state_dict(), loaded.config.to_dict(),
            (np.asarray(loaded.stats.mean), np.asarray(loaded.stats.std)))


class EMA:
    """Exponential moving average of the parameters (and a copy of buffers), kept in fp32."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach().float(), 1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict({k: v.to(p.dtype) for (k, v), p in zip(self.shadow.items(),
                                                                      model.state_dict().values())})
