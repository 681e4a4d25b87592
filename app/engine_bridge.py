"""The bridge between the Qt window and `core.session.LiveSession`.

Why a bridge: the session runs the engine on its own threads and reports frames, stats and errors from there.
The bridge turns those into queued Qt signals, starts and stops the session in asyncio tasks whose blocking
part runs in the task pool (seconds on a cold start), and owns the recovery rule: an engine error stops the
run, is shown, and leaves the bridge ready to start again. Everything that is not Qt (pipeline cache, input
choice, camera policy, sink failures, input level) lives in the session, so `python -m core live` behaves
exactly like the app.

Frames use a two-slot mailbox: the engine thread copies the newest frame into the slot the GUI is not
showing (one copy, no allocation, because the engine reuses its output buffer), and at most one
`frame_ready` signal is in flight, so a slow GUI drops frames instead of queueing them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.session import InputChoice, LiveSession, MicrophoneNotConnected, SessionConfig

from .drive import session_drive, session_drive_options
from .drive_run import DriveRun
from .errors import describe_error
from .look_preview import StillPreview
from .settings import AppSettings
from .tasks import TaskRunner

log = logging.getLogger(__name__)
NO_MICROPHONE = ("No microphone found on this computer. Plug one in and press the rescan button, or choose an "
                 "audio file or the test signal as the input.")

__all__ = ["EngineBridge", "FrameMailbox", "InputChoice", "describe_error"]


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
    input_finished = Signal(str)  # a file input played to its end (its path)
    renderer_changed = Signal(str)  # which renderer runs and why (lite mode, issue 11)
    atlas_progress = Signal(int, int)  # lite-mode atlas build: frames done, frames in all
    _report = Signal(str, object)  # (kind, payload) from engine threads, delivered on the GUI thread

    def __init__(self, tasks: TaskRunner, synthetic: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.synthetic = synthetic
        self.state = "stopped"
        self.mailbox = FrameMailbox()
        self.cropper = None
        self._cropper_lock = threading.Lock()
        self.session = LiveSession(
            on_error=lambda exc: self._report.emit("error", exc),
            on_message=lambda text: self._report.emit("message", text),
            on_camera=lambda text: self._report.emit("camera", text),
            on_finished=lambda: self._report.emit("finished", None),
            resolve_mic=self._resolve_mic,
        )
        self._camera_wanted = True
        self._muted = False
        self._last_stats: dict | None = None
        self._pending_error: BaseException | None = None
        self._stop_requested = False
        self._choice: InputChoice | None = None
        self.look = None  # core.look.Look the next start begins with (the window sets the portrait's)
        self.still = StillPreview(tasks, lambda settings: self.session.pipeline(self.session_config(settings)),
                                  lambda: self.state == "stopped", self._on_frame, self.message.emit)
        self.drive = DriveRun(self.session)  # face driving in the current run (issue 25)
        self._report.connect(self._on_report)
        self.session.on_atlas_progress = lambda done, total: self._report.emit("atlas", (done, total))
        self.session.on_renderer_note = lambda text: self._report.emit("renderer", text)

    @property
    def _engine(self):
        """The running engine (tests peek at its portrait), or None."""
        return self.session.engine if self.state in ("running", "stopping") else None

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

                self.cropper = SerialCropper(FaceCropper(self._models_dir()))
            return self.cropper

    def _models_dir(self) -> Path | None:
        """Where the real face-detector ONNX files live (None: the cropper's built-in fallback)."""
        if self.synthetic:
            return None
        try:
            from core.weights import WeightsRegistry

            return WeightsRegistry().root
        except Exception:
            return None

    # ---- public API used by the window --------------------------------------------------------------
    def start(self, settings: AppSettings, portrait: str, choice: InputChoice, camera: bool,
              muted: bool, face: int = 0) -> None:
        """Start the session in a worker; the GUI returns at once."""
        if self.state != "stopped":
            return
        self._muted = muted
        self._camera_wanted = camera
        self._stop_requested = False
        self._pending_error = None
        self._choice = choice
        self._set_state("starting")
        self.tasks.spawn(self._start(settings, portrait, choice, camera, face))

    async def _start(self, settings: AppSettings, portrait: str, choice: InputChoice, camera: bool,
                     face: int) -> None:
        try:
            camera_text = await self.tasks.run(self._start_blocking, settings, portrait, choice, camera, face)
        except Exception as exc:
            self._start_failed(exc)
        else:
            self._started(camera_text)

    def _start_blocking(self, settings: AppSettings, portrait: str, choice: InputChoice, camera: bool,
                        face: int = 0) -> str:
        from core.engine import CallbackSink

        def start(config: SessionConfig) -> str:
            return self.session.start(config, portrait, choice, camera=camera, muted=self._muted,
                                      sinks=(CallbackSink(self._on_frame),), face=face)

        with self.still.renderer_lock:  # a camera that will not open: said, and the same start on the voice
            return self.drive.start(self.session_config(settings), start, lambda text: self._report.emit(
                "message", text))

    def session_config(self, settings: AppSettings) -> SessionConfig:
        from core.engine import EngineSettings

        budget = settings.latency_budget_ms if settings.latency_budget_ms > 0 else None
        engine = EngineSettings(fps=settings.fps, width=settings.output_width, height=settings.output_height,
                                latency_budget_ms=budget, motion=settings.motion_settings())
        weights = f"synthetic-{self.synthetic}" if self.synthetic else "auto"
        return SessionConfig(weights=weights, motion=settings.motion_source, device=settings.device, engine=engine,
                             loop_files=settings.loop_audio_file, renderer=settings.renderer,
                             backend=settings.backend, look=self.look,
                             drive=session_drive(settings.drive_mode, settings.drive_camera),
                             drive_options=session_drive_options(settings.drive_mode))

    @staticmethod
    def _resolve_mic(name: str | None) -> int | None:
        from . import audio_io

        if name is None and not audio_io.has_default_input():  # PortAudio would say "Error querying device -1"
            raise MicrophoneNotConnected(NO_MICROPHONE)
        dev = audio_io.find_device(name, "input")
        if name is not None and dev is None:
            raise MicrophoneNotConnected(f"The microphone {name!r} is not connected. Plug it in and press the "
                                         "rescan button, or pick another input.")
        return dev.index if dev else None

    def _started(self, camera_text: str) -> None:
        self.session.set_look(self.look)  # a change made while starting
        self.camera_changed.emit(camera_text)
        if self.session.renderer_choice is not None:
            self.renderer_changed.emit(self.session.renderer_choice.reason)
        self._set_state("running")
        if self._pending_error is not None:  # failed while we were starting
            self._on_engine_error_gui(self._pending_error)
        elif self._stop_requested:
            self.stop()

    def _start_failed(self, exc: BaseException) -> None:
        self._set_state("stopped")
        self.error.emit(f"Could not start: {describe_error(exc)}")

    def _on_frame(self, frame: np.ndarray, *args) -> None:
        """Engine thread: copy into the mailbox, wake the GUI at most once per shown frame."""
        if self.mailbox.put(frame):
            self.frame_ready.emit()

    def _on_report(self, kind: str, payload) -> None:
        """GUI thread: what the session reported from its threads."""
        if kind == "error":
            self._on_engine_error_gui(payload)
        elif kind == "message":
            self.message.emit(self.drive.words(payload))
        elif kind == "camera":
            self.camera_changed.emit(payload)
        elif kind == "atlas":
            self.atlas_progress.emit(*payload)
        elif kind == "renderer":
            self.renderer_changed.emit(payload)
        elif kind == "finished" and self.state in ("running", "starting"):
            path = self._choice.value if self._choice is not None else ""
            self.input_finished.emit(path or "")
            self.message.emit(f"The audio file {Path(path or '').name} played to its end. Press Start to play it "
                              "again, or turn on looping for audio files.")
            self.stop()

    def _on_engine_error_gui(self, exc: BaseException) -> None:
        if self.state == "starting":
            self._pending_error = exc
            return
        self._pending_error = None
        if self.state != "running":
            return
        self.error.emit(f"The avatar stopped: {describe_error(exc)} Fix it and press Start again.")
        self.stop()

    def stop(self) -> None:
        if self.state == "starting":
            self._stop_requested = True  # honoured as soon as the start finishes
            return
        if self.state != "running":
            if self.state != "stopping":
                self._set_state("stopped")
            return
        self._set_state("stopping")
        self.tasks.spawn(self._stop())

    async def _stop(self) -> None:
        try:
            await self.tasks.run(self.session.stop)
        except Exception as exc:
            self._stop_failed(exc)
        else:
            self._stopped()

    def _stopped(self) -> None:
        self._last_stats = None
        self.camera_changed.emit("off" if not self._camera_wanted else "idle")
        self._set_state("stopped")

    def _stop_failed(self, exc: BaseException) -> None:
        self.message.emit(f"Stopping reported: {describe_error(exc)}")
        self._stopped()

    def set_portrait(self, path: str, face: int = 0) -> None:
        if self.running:
            self.tasks.spawn(self._set_portrait(path, face))

    async def _set_portrait(self, path: str, face: int) -> None:
        try:
            await self.tasks.run(self.session.set_portrait, path, face)
        except Exception as exc:
            self.error.emit(f"Portrait: {describe_error(exc)}")

    def configure(self, settings: AppSettings) -> None:
        if self.running:
            self.session.configure(self.session_config(settings))

    # ---- look ---------------------------------------------------------------------------------------
    def set_look(self, look, settings: AppSettings | None = None, portrait: str | None = None, face: int = 0) -> None:
        """A new core.look.Look. Live: eased in by the running engine (no extra render). Stopped, with a portrait:
        one still frame with the look is rendered in a worker and shown (the newest request only: a dragged
        slider renders what it ends on, never a backlog); the GUI never waits for it."""
        self.look = look
        if self.state in ("running", "starting"):
            self.session.set_look(look)
            return
        if self.state != "stopped" or settings is None or portrait is None:
            return
        self.still.request(settings, portrait, face, look)

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        self.session.set_muted(muted)

    def set_camera(self, on: bool) -> None:
        self._camera_wanted = on

    def take_frame(self) -> np.ndarray | None:
        return self.mailbox.take()

    def stats(self) -> dict | None:
        if self.running:
            try:
                self._last_stats = {**stats_dict(self.session.stats()), "drive": self.drive.status()}
            except Exception as exc:
                log.warning("engine stats: %s", exc)
        return self._last_stats

    def latency_ms(self) -> float:
        return float((self._last_stats or {}).get("latency_ms", 0.0))

    def input_level(self) -> tuple[float, float] | None:
        """(level, peak) dBFS of what the engine hears while running a file or the test signal; None otherwise
        (a microphone has its own monitor stream)."""
        if not self.running or self._choice is None or self._choice.kind == "mic":
            return None
        return self.session.level.level, self.session.level.peak

    def shutdown(self) -> None:
        """At quit: stop and wait for a render in progress, so no thread is inside torch when Python exits."""
        try:
            self.session.close(timeout=120.0)
        except Exception as exc:
            log.warning("engine stop at exit: %s", exc)


class SerialCropper:
    """One face detection at a time: OpenCV cascades and ONNX sessions are not shared across threads."""

    def __init__(self, cropper):
        self._cropper = cropper
        self._lock = threading.Lock()

    def crop(self, image: np.ndarray, source_name: str = "image", face: int | None = None):
        with self._lock:
            return self._cropper.crop(image, source_name=source_name, face=face)


def stats_dict(stats) -> dict:
    if stats is None:
        return {}
    if dataclasses.is_dataclass(stats):
        return dataclasses.asdict(stats)
    return dict(stats)
