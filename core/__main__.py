"""`python -m core <command>`: bench, render, weights.

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
they are imported lazily so `python -m core weights list` does not pay for torch.compile set-up etc.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core.cli import EXIT_INTERRUPTED, add_lazy_commands

# command -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("core.bench", "benchmarks: render, motion, engine, latency"),
    "live": ("core.live", "run the live avatar without the app: mic, file or test input, stats as JSON"),
    "render": ("core.offline", "render a portrait + an audio file to an mp4"),
    "weights": ("core.weights", "list, download, import or verify model weights"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_lazy_commands(sub, COMMANDS, argv)
    args = parser.parse_args(argv)
    if getattr(args, "missing", None):
        print(f"error: '{args.command}' is not available in this build ({args.missing} is missing)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: commands clean up on the way out
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
