"""What every terminal command shares: lazy sub-command registration (`python -m core`, `python -m core bench`)
and the second Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator

EXIT_INTERRUPTED = 130  # the shell's convention: 128 + SIGINT


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


def option_before_command(parser: argparse.ArgumentParser, argv: list[str], commands) -> None:
    """`prog --bogus` named the missing command instead of the unknown option (issue 21): say what is wrong
    with what was typed, first. Exits through parser.error (status 2) when argv starts with an option other
    than --help."""
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        parser.error(f"unknown option {argv[0]}: options go after the command; commands: {', '.join(commands)} "
                     f"({parser.prog} COMMAND --help lists a command's options)")


def parse_unknown_first(parser: argparse.ArgumentParser, command_parser: argparse.ArgumentParser | None,
                        argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is named before a missing required one (argparse checks the required
    ones first, so `train --bogus` used to complain about --data)."""
    if command_parser is not None:
        required = [a for a in command_parser._actions if a.required]
        for action in required:
            action.required = False
        try:
            _, extras = parser.parse_known_args(argv)
        finally:
            for action in required:
                action.required = True
        if extras:
            command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return parser.parse_args(argv)


@contextlib.contextmanager
def second_ctrl_c_quits(waiting_for: str, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Around the wait for work already on the device after a first Ctrl-C (a torch op cannot be cut short; one
    frame at official size takes seconds on a CPU). A second Ctrl-C runs `cleanup` (drop a partial output file)
    and ends the process at once with exit status 130 and one line saying so: no traceback, and no interpreter
    teardown under a thread still inside torch (which aborts with "terminate called ..."). Everything worth
    keeping must be written before the wait."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            if cleanup is not None:
                cleanup()
        finally:
            print(f"interrupted again: quit without waiting for {waiting_for}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
