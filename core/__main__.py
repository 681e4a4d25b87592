"""`python -m core <command>`: bench, render, weights.

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
they are imported lazily so `python -m core weights list` does not pay for torch.compile set-up etc.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("core.bench", "benchmarks: render, motion, engine, latency"),
    "live": ("core.live", "run the live avatar without the app: mic, file or test input, stats as JSON"),
    "render": ("core.offline", "render a portrait + an audio file to an mp4"),
    "weights": ("core.weights", "list, download, import or verify model weights"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    args_in = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in args_in if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name != wanted:  # only the chosen command's module is imported (others may import torch: seconds)
            continue
        try:
            importlib.import_module(module_name).add_arguments(sub_parser)
        except ModuleNotFoundError as exc:  # a command whose module is not part of this build
            if exc.name != module_name:
                raise
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.main(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: no traceback, the shell's code
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
