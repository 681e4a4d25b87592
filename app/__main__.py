"""`python -m app` / `headcast`: start the desktop app on a qasync event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

# `headcast core ARGS` or `headcast render|weights|bench ARGS` run `python -m core ARGS` (the bundle's only
# executable is this one).
CLI_COMMANDS = ("core", "render", "weights", "bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="headcast", description="One portrait + a microphone -> a talking head "
                                "on a virtual webcam.")
    p.add_argument("--synthetic-weights", choices=("tiny", "full"), default=None,
                   help="developer option: random stand-in weights (no download); the window says so")
    p.add_argument("--device", default=None, help="compute device for this run: auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--quit-after", type=float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--smoke-test", type=float, default=None, metavar="SECONDS",
                   help="check this install: add PHOTO, go live on the test signal for SECONDS, stop, quit "
                   "(exit 0 when live frames arrived)")
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO",
                   help="photos to add to the portrait library (what a file manager's 'Open with' passes)")
    return p.parse_args(argv)


def build_window(args: argparse.Namespace):
    """Load settings (never fails), create the window; a missing-weights first run opens the dialog."""
    from .main_window import MainWindow, excepthook_to_window
    from .settings import load_settings

    settings, warnings = load_settings()
    if args.device:
        settings.device = args.device
    window = MainWindow(settings, synthetic=args.synthetic_weights, warnings=warnings)
    excepthook_to_window(window)
    return window


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CLI_COMMANDS:  # `headcast render ...`: one executable for the app and the CLI
        from core.__main__ import main as core_main

        return core_main(argv[1:] if argv[0] == "core" else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Headcast")
    app.setOrganizationName("headcast")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    window = build_window(args)
    window.show()
    window.first_run_check()
    if args.photos:
        window.add_paths(args.photos)
    smoke = None
    if args.smoke_test is not None:
        from .smoke import run_smoke_test

        smoke = loop.create_task(run_smoke_test(window, args.smoke_test))
    if args.quit_after is not None:  # smoke tests: run the real event loop briefly, then close normally
        loop.call_later(args.quit_after, window.close)
        loop.call_later(args.quit_after, app.quit)
    with loop:
        loop.run_until_complete(closed.wait())
    return smoke.result() if smoke is not None and smoke.done() else (1 if smoke is not None else 0)


if __name__ == "__main__":
    sys.exit(main())
