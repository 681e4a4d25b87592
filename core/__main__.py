"""`python -m core <command>`: the command line of Headcast (the app is `python -m app`).

Each command lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
they are imported lazily so `python -m core weights list` does not pay for torch.compile set-up etc.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from core.bench import BENCHES  # light: the names only, no benchmark module
from core.cli import EXIT_INTERRUPTED, add_lazy_commands, option_before_command

# command -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("core.bench", f"benchmarks: {', '.join(BENCHES)}"),
    "live": ("core.live", "run the live avatar without the app: mic, file or test input, stats as JSON"),
    "render": ("core.offline", "render a portrait + an audio file to an mp4"),
    "weights": ("core.weights", "list, download, import or verify model weights"),
}


def invoked_as() -> str:
    """How the user started this, for usage lines: `python -m core`, or the installed command's name
    (`headcast-core`); `headcast render` passes its own (issue 21: it printed `python -m core render`)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m core" if name in ("", "__main__.py", "-c") else name


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = ", ".join(COMMANDS)
    parser = argparse.ArgumentParser(prog=prog or invoked_as(),
                                     description=f"Headcast's command line: {commands} (COMMAND --help for each).")
    sub = parser.add_subparsers(dest="command", required=True)
    add_lazy_commands(sub, COMMANDS, argv)
    option_before_command(parser, argv, COMMANDS)
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
