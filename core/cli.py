"""Sub-command registration shared by `python -m core` and `python -m core bench`."""

from __future__ import annotations

import importlib
import inspect


def add_lazy_commands(sub, commands: dict[str, tuple[str, str]], argv: list[str]) -> None:
    """Register `commands` on the subparsers action `sub`, importing only the module of the command `argv`
    names (argv[0]). Why: importing every command's module pulls in torch (5-10 s), and an argument or path
    error must appear at once (measured: `render` with a missing file 6.4 s -> 0.4 s)."""
    chosen = argv[0] if argv else None
    for name, (module_name, help_text) in commands.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name != chosen:
            continue
        try:
            add = importlib.import_module(module_name).add_arguments
        except ModuleNotFoundError as exc:  # a command whose module is not part of this build
            if exc.name != module_name:
                raise
            sub_parser.set_defaults(missing=module_name)
            continue
        if "argv" in inspect.signature(add).parameters:  # a command with lazy subcommands of its own
            add(sub_parser, argv=argv[1:])
        else:
            add(sub_parser)
