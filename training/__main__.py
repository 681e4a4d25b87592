"""`python -m training <preprocess|train|finetune|eval|synth> ...` (torchrun works for train and finetune)."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "preprocess": ("training.preprocess", "videos -> motion/audio shards + manifest"),
    "train": ("training.train", "train the motion DiT (resumes from OUT/checkpoints)"),
    "finetune": ("training.finetune", "fine-tune a base model on a small dataset"),
    "eval": ("training.evaluate", "L2, lip-sync proxy and diversity on held-out shards"),
    "synth": ("training.synth", "build the synthetic espeak-ng dataset"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(module=module)
        importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    return importlib.import_module(args.module).main(args)


if __name__ == "__main__":
    sys.exit(main())
