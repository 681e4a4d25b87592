"""Fine-tuning: start from a base motion model, lower learning rate, optionally frozen layers.

The base is either a training checkpoint (`ckpt-*.pt`, its EMA weights are used) or an exported motion model
folder (`core.motion.checkpoint`). The base's normalisation statistics are kept, since its weights live in that
normalised space; the result is exported in the same format, so the app loads it like any motion model.
"""

from __future__ import annotations

import argparse

from training.train import TrainConfig, config_from_args, run
from training.train import add_arguments as add_train_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_train_arguments(p)
    p.add_argument("--base", required=True, help="base checkpoint (ckpt-*.pt) or exported .safetensors motion model")
    p.add_argument("--freeze", default="", help="comma-separated parameter-name prefixes to keep fixed, e.g. "
                   "decoder.layers.0. (default: none)")
    p.set_defaults(lr=5e-5, warmup=20, steps=500, out="runs/finetune")


def finetune_config(args: argparse.Namespace) -> TrainConfig:
    cfg = config_from_args(args)
    cfg.init_from = str(args.base)
    cfg.freeze = tuple(x for x in str(args.freeze).split(",") if x)
    return cfg


def main(args: argparse.Namespace) -> int:
    return run(args, finetune_config, "fine-tuned")
