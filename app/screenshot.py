"""Make docs/screenshot.png: the real window with a portrait loaded and a live preview frame.

    Xvfb :99 -screen 0 1280x800x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python -m app.screenshot docs/screenshot.png

Uses tmp config/data folders and synthetic tiny weights, so it never touches the user's library.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def wait_until(app, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--portrait", type=Path, default=None, help="default: scikit-image's astronaut photo")
    p.add_argument("--frames", type=int, default=10, help="preview frames to wait for (0: do not start)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="headcast-shot-"))
    os.environ["HEADCAST_CONFIG_DIR"] = str(tmp / "config")
    os.environ["HEADCAST_DATA_DIR"] = str(tmp / "data")
    portrait = args.portrait
    if portrait is None:
        import cv2
        from skimage import data

        portrait = tmp / "astronaut.png"
        cv2.imwrite(str(portrait), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))

    from PySide6.QtWidgets import QApplication

    from .engine_bridge import InputChoice
    from .main_window import MainWindow
    from .settings import AppSettings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    w = MainWindow(AppSettings(), synthetic="tiny")
    w.resize(1280, 760)
    w.show()
    w.add_paths([portrait])
    wait_until(app, lambda: len(w.library) == 1, 60, "the portrait's face crop")
    wait_until(app, lambda: getattr(w, "camera_available", None) is not None, 30, "the camera probe")
    w.select_input(InputChoice("generator"))
    if args.frames > 0:
        w.start()
        wait_until(app, lambda: w.preview.frames_shown >= args.frames, 300, "preview frames")
        wait_until(app, lambda: w.status_label.text() != "stopped", 5, "stats")
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ok = w.grab().save(str(args.out))
    w.close()
    print(f"{'saved' if ok else 'FAILED to save'} {args.out} ({w.preview.frames_shown} preview frames)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
