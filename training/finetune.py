"""Fine-tuning: start from a base motion model, lower learning rate, optionally frozen layers.

The base is either a training checkpoint (`ckpt-*.pt`, its EMA weights are used) or an exported motion model
folder (`core.motion.checkpoint`). The base's normalisation statistics are kept, since its weights live in that
normalised space; the result is exported in the same format, so the app loads it like any motion model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training import checkpointing
from training.train import TrainConfig, config_from_args, train
from training.train import add_arguments as add_train_arguments


def load_base(path: str | Path) -> tuple[dict, dict, tuple[np.ndarray, np.ndarray] | None]:
    """-> (state_dict, DiTConfig fields, (mean, std)). A `.pt` is a training checkpoint, else a motion model."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Base model {path} not found. Pass a training checkpoint (ckpt-*.pt) or an "
                                "exported .safetensors motion model.")
    if path.is_file() and path.suffix == ".pt":
        state = checkpointing.load(path)
        return dict(state["ema"]["shadow"]), dict(state["model_config"]), (state["mean"], state["std"])
    from core.motion.checkpoint import load_motion_model

    loaded = load_motion_model(path)
    return (loaded.model.state_dict(), loaded.config.to_dict(),
            (np.asarray(loaded.stats.mean), np.asarray(loaded.stats.std)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_train_arguments(p)
    p.add_argument("--base", required=True, help="base checkpoint (ckpt-*.pt) or exported .safetensors motion model")
    p.add_argument("--freeze", default="", help="comma-separated parameter-name prefixes to keep fixed")
    p.set_defaults(lr=5e-5, warmup=20, steps=500, out="runs/finetune")


def finetune_config(args: argparse.Namespace) -> TrainConfig:
    cfg = config_from_args(args)
    cfg.init_from = str(args.base)
    cfg.freeze = tuple(x for x in str(args.freeze).split(",") if x)
    return cfg


def main(args: argparse.Namespace) -> int:
    result = train(finetune_config(args), stop_after=args.stop_after)
    print(f"fine-tuned to step {result['step']}")
    return 0
