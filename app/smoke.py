"""`headcast --smoke-test SECONDS PHOTO`: prove an install works end to end, without a person at the keyboard.

Used by the bundle test (tests/test_bundle.py) and by anyone checking a fresh install: it adds the photo,
selects the test signal, goes live, keeps running for SECONDS, stops and quits. Exit 0 only when live preview
frames arrived and the run stopped cleanly; otherwise exit 1 with the reason (and the window's messages).
Progress lines start with "smoke:" on stdout so a caller can time them (cold start = "window shown").
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from PySide6.QtWidgets import QApplication

from .engine_bridge import InputChoice

PORTRAIT_TIMEOUT_S = 120.0  # face detection of the first photo (cold OpenCV/ONNX start on a slow CPU)
LIVE_TIMEOUT_S = 300.0  # model build + first rendered frame on a 2-core CPU with tiny synthetic weights
STOP_TIMEOUT_S = 60.0
FREEZE_CHECK_S = 30.0  # a live run must show a new preview frame at least this often


def say(text: str) -> None:
    print(f"smoke: {text}", flush=True)


async def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _keep_live(window, seconds: float) -> None:
    """Stay live for `seconds`, checking every FREEZE_CHECK_S that new preview frames arrived (a long run that
    froze halfway must not pass on the frames of its first minute)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        before = window.preview.frames_shown
        await asyncio.sleep(min(FREEZE_CHECK_S, left))
        if not window.bridge.running:
            raise RuntimeError("the run stopped by itself")
        if left >= FREEZE_CHECK_S and window.preview.frames_shown == before:
            raise RuntimeError(f"the preview froze: no new frame in {FREEZE_CHECK_S:.0f} s while live")


async def run_smoke_test(window, seconds: float) -> int:
    """Drive `window` (a shown MainWindow) through a live run on the test signal; returns the exit code."""
    await asyncio.sleep(0)  # one loop turn: the window has been laid out and exposed
    say("window shown")
    try:
        await _wait(lambda: window.current_portrait() is not None or not window.tasks.pending,
                    PORTRAIT_TIMEOUT_S, "the portrait's face crop")
        if window.current_portrait() is None:
            raise RuntimeError("no portrait in the library: pass a photo, e.g. headcast --smoke-test 5 me.jpg")
        window.select_input(InputChoice("generator", None))
        window.start()
        await _wait(lambda: window.bridge.running and window.preview.frames_shown > 0
                    or window.bridge.state == "stopped", LIVE_TIMEOUT_S, "the first live frame")
        if not window.bridge.running:
            raise RuntimeError("the run did not start")
        say(f"live on {window.current_portrait().name}")
        first = window.preview.frames_shown
        none_refs = sys.getrefcount(None)
        await _keep_live(window, seconds)
        shown = window.preview.frames_shown - first
        # a Qt binding that drops references to None (PySide6 6.12.0 on Python < 3.12) aborts a long run; the
        # soak test (tests/test_app_soak.py) reads this line
        say(f"None references {none_refs} -> {sys.getrefcount(None)} ({sys.getrefcount(None) - none_refs:+d})")
        if not window.bridge.running:
            raise RuntimeError("the run stopped by itself")
        say(f"{shown} preview frames in {seconds:g} s; status: {window.status_label.text()}")
        if shown == 0:
            raise RuntimeError("the preview froze: no frames while live")
        window.bridge.stop()
        await _wait(lambda: window.bridge.state == "stopped", STOP_TIMEOUT_S, "the run to stop")
        say("stopped cleanly")
        return 0
    except Exception as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr, flush=True)
        for message in getattr(window, "messages", []):  # what the window showed, for the log
            print(f"smoke: window message: {message}", file=sys.stderr, flush=True)
        return 1
    finally:
        window.close()
        QApplication.quit()
