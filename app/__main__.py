"""`python -m app` / `headcast`: start the desktop app on a qasync event loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from .display import EXIT_NO_DISPLAY, choose_platform

log = logging.getLogger("app")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="headcast", description="One portrait + a microphone -> a talking head "
                                "on a virtual webcam.")
    from core.cli_args import SIZES, size_value  # the sizes every command spells alike (light: no torch)

    p.add_argument("--synthetic-weights", type=size_value, choices=SIZES, default=None, metavar="SIZE",
                   help="developer option: random stand-in weights (no download), tiny or official size ('full' "
                   "also works); the window says so")
    p.add_argument("--device", default=None, help="compute device for this run: auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--quit-after", type=float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--smoke-test", type=float, default=None, metavar="SECONDS",
                   help="check this install: add PHOTO, go live on the test signal for SECONDS, stop, quit "
                   "(exit 0 when live frames arrived)")
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO",
                   help="photos to add to the portrait library (what a file manager's 'Open with' passes)")
    return p.parse_args(argv)


def prepare_display(env) -> str | None:
    """Pick Qt's platform plugin before Qt loads one (`app.display`), set it in `env` and log the choice;
    returns the one-sentence problem when the window cannot open."""
    choice = choose_platform(env)
    if choice.problem is not None:
        return choice.problem
    if choice.platform and not env.get("QT_QPA_PLATFORM"):
        env["QT_QPA_PLATFORM"] = choice.platform
    fallback = "XWayland" in choice.reason
    log.log(logging.WARNING if fallback else logging.INFO, "display: %s", choice.reason)
    return None


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


def show_splash(app, smoke: bool = False):
    """The first window, up before the main window's imports (torch: 2-3 s warm, far more from a cold disk or a
    bundle's first start), so a double-click gets an answer at once."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QSplashScreen

    from resources import resource_path

    splash = QSplashScreen(QIcon(str(resource_path("icons", "headcast.svg"))).pixmap(256, 256))
    splash.showMessage("Starting Headcast…", Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter)
    splash.show()
    app.processEvents()
    if smoke:
        print("smoke: splash shown", flush=True)
    return splash


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from core.__main__ import COMMANDS  # light: no torch until a command runs
    from core.__main__ import main as core_main

    if argv and (argv[0] == "core" or argv[0] in COMMANDS):  # `headcast render ...`: the bundle's one executable
        name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "headcast"
        prog = name if name not in ("__main__.py", "-c") else "python -m app"
        return core_main(argv[1:] if argv[0] == "core" else argv, prog=f"{prog} core" if argv[0] == "core" else prog)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    problem = prepare_display(os.environ)
    if problem is None:
        from .qt_binding import binding_problem

        problem = binding_problem()
    if problem is not None:  # one sentence instead of Qt's abort (or a crash minutes into a call)
        print(problem, file=sys.stderr, flush=True)
        return EXIT_NO_DISPLAY
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Headcast")
    app.setOrganizationName("headcast")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = loop.create_future()  # set when Qt quits (last window closed, or QApplication.quit())
    app.aboutToQuit.connect(lambda: closed.done() or closed.set_result(None))
    splash = show_splash(app, smoke=args.smoke_test is not None)
    smoke: list[asyncio.Task] = []

    def open_window() -> None:
        """The loop's first callback, so the window's background tasks start on a running asyncio loop. A plain
        callback, not a task: splash.finish spins Qt, which would step other tasks inside this one."""
        try:
            window = build_window(args)
            window.show()
            splash.finish(window)
            window.first_run_check()
            if args.photos:
                window.add_paths(args.photos)
            if args.smoke_test is not None:
                from .smoke import run_smoke_test

                smoke.append(loop.create_task(run_smoke_test(window, args.smoke_test)))
            if args.quit_after is not None:  # smoke tests: run the real event loop briefly, then close normally
                loop.call_later(args.quit_after, window.close)
                loop.call_later(args.quit_after, app.quit)
        except BaseException as exc:  # raised by run_until_complete below, as before the loop existed
            if not closed.done():
                closed.set_exception(exc)

    loop.call_soon(open_window)
    with loop:
        loop.run_until_complete(closed)
        finish_tasks(loop)
    if args.smoke_test is None:
        return 0
    return smoke[0].result() if smoke and smoke[0].done() and not smoke[0].cancelled() else 1


def finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run does before closing its loop: cancel the tasks still pending and let them end, so none
    is destroyed mid-await (the window cancels its own on close; this catches the rest)."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

if __name__ == "__main__":
    sys.exit(main())
