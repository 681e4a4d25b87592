"""The bridge between the Qt window and `core.engine.Engine`.

Why a bridge: the engine runs on its own thread and reports frames, stats and errors from there. The bridge
turns those into queued Qt signals, builds the models in a worker thread (seconds on a cold start), and
owns the recovery rule: an engine error stops the run, is shown, and leaves the bridge ready to start again.

Frames use a two-slot mailbox: the engine thread copies the newest frame into the slot the GUI is not
showing (one copy, no allocation, because the engine reuses its output buffer), and at most one
`frame_ready` signal is in flight, so a slow GUI drops frames instead of queueing them.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from .settings import AppSettings
from .tasks import TaskRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputChoice:
    """What feeds the engine: a microphone by name (None: default), an audio file, or the test generator."""

    kind: str  # "mic" | "file" | "generator"
    value: str | None = None


def camera_install_hint(system: str | None = None) -> str:
    """What to install so pyvirtualcam finds a virtual camera on this OS."""
    system = system or platform.system()
    if system == "Linux":
        return ("No virtual camera device. Install v4l2loopback and create a device:\n"
                "  sudo apt install v4l2loopback-dkms\n"
                "  sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Headcast")
    if system == "Windows":
        return "No virtual camera. Install OBS Studio (28 or newer) and start its Virtual Camera once."
    if system == "Darwin":
        return ("No virtual camera. Install OBS Studio (30 or newer), start its Virtual Camera once and allow "
                "the camera extension in System Settings > Privacy & Security.")
    return f"Virtual cameras are not supported on {system}."


def camera_backends() -> list[str]:
    """pyvirtualcam backends registered for this OS (the first that opens is used)."""
    try:
        from pyvirtualcam import camera
    except Exception:
        return []
    return list(camera.BACKENDS)


class FrameMailbox:
    """Newest-frame hand-off from the engine thread to the GUI thread without allocation per frame."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: list[np.ndarray | None] = [None, None]
        self._shown = 0
        self._ready = -1
        self.received = 0

    def put(self, frame: np.ndarray) -> bool:
        """Copy `frame` in; returns True when the GUI must be notified (nothing was pending)."""
        with self._lock:
            back = 1 - self._shown
            slot = self._slots[back]
            if slot is None or slot.shape != frame.shape:
                slot = self._slots[back] = np.empty(frame.shape, np.uint8)
            np.copyto(slot, frame)
            notify = self._ready < 0
            self._ready = back
            self.received += 1
            return notify

    def take(self) -> np.ndarray | None:
        with self._lock:
            if self._ready < 0:
                return None
            self._shown = self._ready
            self._ready = -1
            return self._slots[self._shown]


class EngineBridge(QObject):
    state_changed = Signal(str)  # stopped | starting | running | stopping
    frame_ready = Signal()
    error = Signal(str)
    message = Signal(str)
    camera_changed = Signal(str)

    def __init__(self, tasks: TaskRunner, synthetic: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.synthetic = synthetic
        self.state = "stopped"
        self.mailbox = FrameMailbox()
        self.cropper = None
        self._cropper_lock = threading.Lock()
        self._engine = None
        self._camera_sink = None
        self._camera_wanted = True
        self._muted = False
        self._last_stats: dict | None = None

    # ---- state --------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state == "running"

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def get_cropper(self):
        """The shared face cropper (created on first use, in whatever worker thread asks first)."""
        with self._cropper_lock:
            if self.cropper is None:
                from core.face import FaceCropper

                self.cropper = FaceCropper(self._models_dir())
            return self.cropper

    def _models_dir(self) -> Path | None:
        return None

    # ---- public API used by the window --------------------------------------------------------------
    def start(self, settings: AppSettings, portrait: str, choice: InputChoice, camera: bool, muted: bool) -> None:
        raise NotImplementedError("waiting for core.engine")

    def stop(self) -> None:
        raise NotImplementedError("waiting for core.engine")

    def set_portrait(self, path: str) -> None:
        pass

    def configure(self, settings: AppSettings) -> None:
        pass

    def set_muted(self, muted: bool) -> None:
        self._muted = muted

    def set_camera(self, on: bool) -> None:
        self._camera_wanted = on

    def camera_description(self) -> str:
        names = camera_backends()
        return f"will use {' / '.join(names)}" if names else camera_install_hint()

    def take_frame(self) -> np.ndarray | None:
        return self.mailbox.take()

    def stats(self) -> dict | None:
        return self._last_stats

    def latency_ms(self) -> float:
        return float((self._last_stats or {}).get("latency_ms", 0.0))

    def shutdown(self) -> None:
        pass


def stats_dict(stats) -> dict:
    if stats is None:
        return {}
    if dataclasses.is_dataclass(stats):
        return dataclasses.asdict(stats)
    return dict(stats)
