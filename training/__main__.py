"""`python -m training <command> ...` (torchrun works for train and finetune). Every option shows its default."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.cli import option_before_command, parse_unknown_first

COMMANDS = {
    "synth": ("training.synth", "build a synthetic dataset (espeak-ng speech, motion a known function of it)"),
    "preprocess": ("training.preprocess", "talking-head videos -> dataset (parallel --workers, --shard i/n)"),
    "pack": ("training.tools", "pack a dataset's clips into memory-mapped arrays (after sharded preprocessing)"),
    "train": ("training.train", "train the motion DiT (resumes from OUT/checkpoints)"),
    "finetune": ("training.finetune", "fine-tune a base model on a small dataset"),
    "distill": ("training.distill", "speech recordings -> JoyVASA motion targets -> a streaming DiT imitating it"),
    "eval": ("training.evaluate", "L2, lip-sync proxy and diversity on held-out clips"),
    "install": ("training.tools", "install a trained model where the app and `python -m core render` find it"),
    "bench-data": ("training.bench_data", "per-step sampling cost and memory at two dataset sizes"),
}


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to every optional argument that has one (required ones have none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default is None or isinstance(action, argparse._StoreTrueAction):
            return action.help or ""
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m training", description="Train Headcast's speech-to-motion "
                                     "model. Worked example: docs/TRAINING.md.")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = argv[0] if argv else None
    chosen_parser = None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=DefaultsFormatter)
        p.set_defaults(module=module)
        if name != chosen:  # only the chosen command's module (and torch) is imported: argument errors at once
            continue
        mod = importlib.import_module(module)
        adder = getattr(mod, f"add_{name.replace('-', '_')}_arguments", None) or mod.add_arguments
        adder(p)
        chosen_parser = p
    option_before_command(parser, argv, COMMANDS)
    args = parse_unknown_first(parser, chosen_parser, argv)
    mod = importlib.import_module(args.module)
    run = getattr(mod, f"{args.command.replace('-', '_')}_main", None) or mod.main
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
