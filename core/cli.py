"""What every terminal command shares: lazy sub-command registration (`python -m core`, `python -m core bench`)
and the second Ctrl-C."""

from __future__ import annotations

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
