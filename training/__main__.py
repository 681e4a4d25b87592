"""`python -m training <preprocess|train|finetune|eval|synth> ...` (torchrun works for train and finetune)."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.cli import add_lazy_commands

COMMANDS = {
    "preprocess": ("training.preprocess", "videos -> motion/audio shards + manifest"),
    "train": ("training.train", "train the motion DiT (resumes from OUT/checkpoints)"),
    "finetune": ("training.finetune", "fine-tune a base model on a small dataset"),
    "eval": ("training.evaluate", "L2, lip-sync proxy and diversity on held-out shards"),
    "synth": ("training.synth", "build the synthetic espeak-ng dataset"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    add_lazy_commands(sub, COMMANDS, argv)  # only the chosen command's module (and torch) is imported
    args = parser.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command][0]).main(args)


if __name__ == "__main__":
    sys.exit(main())
