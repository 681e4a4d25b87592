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
        return ("No virtual camera device: install v4l2loopback.\n"
                "  sudo apt install v4l2loopback-dkms\n"
                "  sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Headcast")
    if system == "Windows":
        return ("No virtual camera: install OBS Studio.\n"
                "Install OBS Studio 28 or newer and start its Virtual Camera once.")
    if system == "Darwin":
        return ("No virtual camera: install OBS Studio.\n"
                "Install OBS Studio 30 or newer, start its Virtual Camera once and allow the camera extension "
                "in System Settings > Privacy & Security.")
    return f"Virtual cameras are not supported on {system}."


def camera_backends() -> list[str]:
    """pyvirtualcam backends registered for this OS (the first that opens is used)."""
    try:
        from pyvirtualcam import camera
    except Exception:
        return []
    return list(camera.BACKENDS)


def probe_camera(width: int = 64, height: int = 64, fps: float = 25) -> tuple[bool, str]:
    """Open and close a virtual camera to learn which backend and device would be used.

    Returns (True, "backend: device") or (False, what to install and the backend errors). Blocking (tens of
    milliseconds to a second): call it from a worker thread.
    """
    try:
        import pyvirtualcam
    except Exception as exc:
        return False, f"pyvirtualcam is not importable ({exc}); pip install pyvirtualcam"
    try:
        with pyvirtualcam.Camera(width=width, height=height, fps=fps) as cam:
            return True, f"{cam.backend}: {cam.device}"
    except Exception as exc:
        return False, f"{camera_install_hint()}\n({str(exc).strip()})"


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
    _engine_failed = Signal(object)

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
        self._pending_error: BaseException | None = None
        self._stop_requested = False
        self._cache_key = None
        self._cache = None
        self._engine_failed.connect(self._on_engine_error_gui)

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
              muted: bool) -> None:
        """Build (or reuse) the pipeline and start the engine in a worker; the GUI returns at once."""
        if self.state != "stopped":
            return
        self._muted = muted
        self._camera_wanted = camera
        self._stop_requested = False
        self._pending_error = None
        self._set_state("starting")
        self.tasks.submit(self._start_blocking, settings, portrait, choice, camera,
                          on_done=self._started, on_error=self._start_failed)

    def _start_blocking(self, settings: AppSettings, portrait: str, choice: InputChoice, camera: bool):
        from core.engine import CallbackSink, Engine

        renderer, motion = self._pipeline(settings)
        engine = Engine(renderer, motion, self._engine_settings(settings))
        engine.on_error = self._on_engine_error
        engine.set_muted(self._muted)
        engine.set_portrait(portrait)
        engine.add_sink(CallbackSink(self._on_frame))
        camera_text = "off"
        if camera:
            camera_text = self._open_camera(engine, settings)
        engine.start(self._audio_source(choice))
        return engine, camera_text

    def _open_camera(self, engine, settings: AppSettings) -> str:
        """Add the virtual camera sink; without a backend say what to install and keep the preview."""
        from core.engine import VirtualCameraSink

        try:
            sink = VirtualCameraSink(width=settings.output_width, height=settings.output_height,
                                     fps=settings.fps)
        except Exception as exc:  # VirtualCameraUnavailable carries the install hint
            self.message.emit(f"Virtual camera unavailable; the preview keeps working. {exc}")
            return camera_install_hint().splitlines()[0]
        self._camera_sink = WatchedSink(sink)
        engine.add_sink(self._camera_sink)
        return f"sending to {describe_sink(sink)}"

    def _started(self, result) -> None:
        engine, camera_text = result
        self._engine = engine
        self.camera_changed.emit(camera_text)
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

    def _on_engine_error(self, exc: BaseException) -> None:
        """Engine thread: hand over to the GUI thread (queued signal)."""
        self._engine_failed.emit(exc)

    def _on_engine_error_gui(self, exc: BaseException) -> None:
        camera = self._camera_sink
        if camera is not None and camera.failed is exc:  # the engine dropped the sink and keeps running
            self._camera_sink = None
            self.camera_changed.emit(f"stopped: {describe_error(exc)}")
            self.error.emit(f"The virtual camera stopped: {describe_error(exc)} The preview keeps running; "
                            "stop and start again to retry the camera.")
            return
        if self.state == "starting":
            self._pending_error = exc
            return
        self._pending_error = None
        self.error.emit(f"The avatar stopped: {describe_error(exc)} Fix it and press Start again.")
        self.stop()

    def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            if self.state == "starting":
                self._stop_requested = True  # honoured as soon as the start finishes
            else:
                self._set_state("stopped")
            return
        self._set_state("stopping")
        self._camera_sink = None
        self.tasks.submit(self._stop_blocking, engine, on_done=lambda _r: self._stopped(),
                          on_error=self._stop_failed)

    @staticmethod
    def _stop_blocking(engine) -> None:
        engine.close()  # stop threads and source, and release the sinks (the camera device)

    def _stopped(self) -> None:
        self._last_stats = None
        self.camera_changed.emit("off" if not self._camera_wanted else "idle")
        self._set_state("stopped")

    def _stop_failed(self, exc: BaseException) -> None:
        self.message.emit(f"Stopping reported: {describe_error(exc)}")
        self._stopped()

    def set_portrait(self, path: str) -> None:
        if self._engine is not None:
            self.tasks.submit(self._engine.set_portrait, path,
                              on_error=lambda e: self.error.emit(f"Portrait: {describe_error(e)}"))

    def configure(self, settings: AppSettings) -> None:
        if self._engine is not None:
            self._engine.configure(self._engine_settings(settings))

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        if self._engine is not None and hasattr(self._engine, "set_muted"):
            self._engine.set_muted(muted)

    def set_camera(self, on: bool) -> None:
        self._camera_wanted = on

    def camera_description(self) -> str:
        names = camera_backends()
        return f"backends: {' / '.join(names)} (checking…)" if names else camera_install_hint()

    def take_frame(self) -> np.ndarray | None:
        return self.mailbox.take()

    def stats(self) -> dict | None:
        if self._engine is not None:
            try:
                self._last_stats = stats_dict(self._engine.stats())
            except Exception:
                pass
        return self._last_stats

    def latency_ms(self) -> float:
        return float((self._last_stats or {}).get("latency_ms", 0.0))

    def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:
                log.warning("engine stop at exit: %s", exc)

    # ---- pipeline construction (worker thread) --------------------------------------------------------
    def _pipeline(self, settings: AppSettings):
        """Renderer + motion source from `core.pipeline`, cached per (device, weights, motion source)."""
        weights = f"synthetic-{self.synthetic}" if self.synthetic else "auto"
        key = (settings.device, weights, settings.motion_source, settings.backend)
        if self._cache_key != key:
            from core.pipeline import build_pipeline

            self._cache = None
            self._cache = build_pipeline(weights=weights, motion=settings.motion_source, device=settings.device,
                                         settings=settings.motion_settings(), backend=settings.backend)
            self._cache_key = key
        renderer, motion = self._cache
        motion.configure(settings.motion_settings())
        return renderer, motion

    @staticmethod
    def _engine_settings(settings: AppSettings):
        from core.engine import EngineSettings

        return EngineSettings(fps=settings.fps, width=settings.output_width, height=settings.output_height,
                              motion=settings.motion_settings())

    def _audio_source(self, choice: InputChoice):
        from core.engine import FileSource, GeneratorSource, MicrophoneSource

        if choice.kind == "file":
            return FileSource(choice.value, realtime=True)
        if choice.kind == "generator":
            return GeneratorSource()
        from . import audio_io

        dev = audio_io.find_device(choice.value, "input")
        if choice.value is not None and dev is None:
            raise RuntimeError(f"The microphone {choice.value!r} is not connected. Plug it in and press the "
                               "rescan button, or pick another input.")
        return MicrophoneSource(device=dev.index if dev else None)


class SerialCropper:
    """One face detection at a time: OpenCV cascades and ONNX sessions are not shared across threads."""

    def __init__(self, cropper):
        self._cropper = cropper
        self._lock = threading.Lock()

    def crop(self, image: np.ndarray, source_name: str = "image"):
        with self._lock:
            return self._cropper.crop(image, source_name=source_name)


class WatchedSink:
    """Wraps a sink to remember its failure, so an engine error can be traced back to the camera."""

    def __init__(self, sink):
        self.sink = sink
        self.failed: BaseException | None = None

    def write(self, frame, info) -> None:
        try:
            self.sink.write(frame, info)
        except Exception as exc:
            self.failed = exc
            raise

    def close(self) -> None:
        self.sink.close()


def describe_sink(sink) -> str:
    cam = getattr(sink, "camera", None)
    backend = getattr(sink, "backend", None) or getattr(cam, "backend", None)
    device = getattr(sink, "device", None) or getattr(cam, "device", None)
    return f"{backend}: {device}" if backend else str(device or "virtual camera")


def describe_error(exc: BaseException) -> str:
    """One line for users; out-of-memory gets its fix spelled out."""
    text = str(exc).strip() or type(exc).__name__
    if "out of memory" in text.lower():
        return (f"the GPU ran out of memory ({text.splitlines()[0]}). Close other GPU programs, lower the "
                "camera size, or choose the CPU device.")
    return text


def stats_dict(stats) -> dict:
    if stats is None:
        return {}
    if dataclasses.is_dataclass(stats):
        return dataclasses.asdict(stats)
    return dict(stats)
