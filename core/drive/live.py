"""One live run's face driving: the driving reader and thread, the face + voice motion source, and the
camera-to-frame latency sink, started and stopped with the run (core/session.py owns one per start).

Lite mode drives through motion rows like the full renderer, within what its atlas holds (core/lite/projection.py):
the head as a 2D similarity (exact for roll, shift and zoom, approximate for small nods and turns), eyes and mouth
from the atlas; the rest of the expression (brows, smiles) has no atlas entry. That is said once per start.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.drive.capture import DrivingReader, driving_reader
from core.drive.config import LiveDriveOptions
from core.drive.face_voice import FaceVoiceSource
from core.drive.feed import DrivingFeed, DrivingThread, FaceTracker
from core.engine import policy
from core.engine.clock import REAL_TIME, Clock
from core.engine.policy import EngineSettings
from core.engine.sinks import FrameInfo
from core.motion.source import MotionSource

LITE_NOTE = ("Lite mode drives with your face within its limits: head turns become a 2D tilt, shift and zoom of the "
             "picture, eyes and mouth come from the atlas, and brows and smiles are dropped (the full renderer "
             "shows them).")


class DriveLatency:
    """A sink: per new frame that showed a fresh driving face, emit time minus that face's capture time."""

    def __init__(self, source: FaceVoiceSource) -> None:
        self.source = source
        self.latency_s: list[float] = []

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        if info.repeated:
            return
        captured = self.source.emitted(info.index, info.emit_time)
        if captured is not None:
            self.latency_s.append(info.emit_time - captured)

    def close(self) -> None:
        pass

    def summary(self) -> dict:
        ms = np.asarray(self.latency_s) * 1000.0

        def pct(q: float) -> float | None:
            return round(float(np.percentile(ms, q)), 1) if len(ms) else None

        return {"camera_latency_ms_p50": pct(50), "camera_latency_ms_p95": pct(95),
                "camera_latency_ms_max": round(float(ms.max()), 1) if len(ms) else None,
                "camera_driven_frames": len(ms)}


class LiveDrive:
    """`--drive camera|camera:N|VIDEO` for one run: open the reader, start the thread, wrap the speech source."""

    def __init__(self, spec: str, cropper, speech: MotionSource, on_message: Callable[[str], None] | None = None,
                 loop: bool = False, clock: Clock | None = None, reader: DrivingReader | None = None,
                 options: LiveDriveOptions | None = None) -> None:
        clock = clock or REAL_TIME
        self.spec = spec
        self.on_message = on_message
        self.feed = DrivingFeed()
        tracker = FaceTracker(cropper)
        self.reader = reader or driving_reader(spec, loop=loop, clock=clock.now)
        self.thread = DrivingThread(self.reader, tracker, self.feed, on_message)
        # budget_s is the engine's latency budget, set in start() once the engine exists
        options = options or LiveDriveOptions()
        self.source = FaceVoiceSource(speech, self.feed, budget_s=1.0, reanchor=tracker.reanchor, split=options.split,
                                      smoothing=options.smoothing, clock=clock.now)
        self.latency = DriveLatency(self.source)

    def open(self) -> None:
        """Open the camera or video now (CameraError / DrivingVideoError: nothing was started)."""
        self.reader.open()

    def start(self, engine) -> None:
        """Bind to `engine` (its frame numbering and latency budget), add the latency sink, start reading."""
        self.source.frame_base = lambda: engine.frame_base
        self.configure(engine.settings, engine)
        engine.add_sink(self.latency)
        if engine.renderer.backend_name == "lite" and self.on_message is not None:
            self.on_message(LITE_NOTE)
        self.thread.start()

    def configure(self, settings: EngineSettings, engine) -> None:
        """The latency budget in force for `settings` (the engine's own rule), for the driving frames too."""
        device = engine.renderer.spec.device
        self.source.budget_s = policy.budget_ms(settings, device, self.source.latency_ms()) / 1000.0

    def close(self) -> None:
        self.thread.stop()
