"""Small dataset and model chores: `pack` (memory-mapped arrays for training) and `install` (a trained model
where the app finds it: WEIGHTS/motion/model.safetensors, see `core.motion.checkpoint.installed_motion_model`)."""

from __future__ import annotations

import argparse
import shutil
import sys

from training.data import DataError, pack


def add_pack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset folder (from preprocess or synth)")


def pack_main(args: argparse.Namespace) -> int:
    try:
        pack(args.data, progress=True)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_install_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported motion model (OUT/model.safetensors from train or finetune)")
    p.add_argument("--weights", default=None, help="weights folder (default: the app's, $HEADCAST_WEIGHTS_DIR or the "
                   "user data folder; see `python -m core weights list`)")


def install_main(args: argparse.Namespace) -> int:
    from core.atomic import atomic_path
    from core.motion.checkpoint import MotionCheckpointError, installed_motion_model, load_motion_model
    from core.weights import WeightsRegistry

    try:
        loaded = load_motion_model(args.model)  # refuse to install a file the app could not load
    except MotionCheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = installed_motion_model(WeightsRegistry(args.weights).root)
    with atomic_path(target, suffix=".safetensors") as tmp:
        shutil.copyfile(args.model, tmp)
    speech = loaded.audio.get("model", "?")
    print(f"installed {args.model} as {target} (speech model: {speech}).\n"
          "Use it: choose Motion 'dit' in the app, or `python -m core render --motion dit ...` "
          "(add --synthetic-weights tiny when it was trained on a --synthetic-weights dataset without LivePortrait "
          "weights installed).")
    return 0

