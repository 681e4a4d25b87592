"""Quitting the app while an official-size run is rendering exits 0 (it aborted with exit 134, 'terminate called
without an active exception', when a render thread was still inside torch at interpreter exit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.engine_bridge import InputChoice
from app.main_window import MainWindow
from app.settings import AppSettings

app = QApplication(sys.argv[:1])
w = MainWindow(AppSettings(camera_enabled=False, device="cpu", renderer="full"), synthetic="full")
w.show()
w.add_paths([sys.argv[1]])
state = {"started": False, "running_at": None}

def poll():
    if not state["started"] and len(w.library) == 1:
        w.select_input(InputChoice("generator"))
        w.start()
        state["started"] = True
    if w.bridge.state == "running" and state["running_at"] is None:
        state["running_at"] = time.monotonic()
        print("running", flush=True)
    if state["running_at"] is not None and time.monotonic() - state["running_at"] > 3:
        w.close()  # mid-render: the first official-size frame takes seconds on a CPU
        app.quit()

timer = QTimer(interval=100, timeout=poll)
timer.start()
app.exec()
print("quit", flush=True)
"""


@pytest.mark.slow
def test_quit_during_an_official_size_run_exits_0(tmp_path, astronaut):
    import cv2

    png = tmp_path / "astronaut.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1",
           "HEADCAST_CONFIG_DIR": str(tmp_path / "c"), "HEADCAST_DATA_DIR": str(tmp_path / "d")}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(png)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=900)
    assert "running" in r.stdout, r.stderr[-3000:]
    assert r.returncode == 0 and "quit" in r.stdout, (r.returncode, r.stderr[-3000:])
    assert "terminate called" not in r.stderr
