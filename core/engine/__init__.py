"""The streaming engine: audio sources -> motion -> rendering -> paced frames -> sinks."""

from .clock import REAL_TIME, Clock
from .engine import Engine, EngineBusy, EngineSettings, EngineStats, default_budget_ms
from .sinks import (
    CallbackSink,
    FrameInfo,
    SinkFailure,
    VideoFileSink,
    VirtualCameraSink,
    VirtualCameraUnavailable,
    camera_install_hint,
    fit_frame,
)
from .sources import AudioSourceError, FileSource, GeneratorSource, MicrophoneSource

__all__ = [
    "REAL_TIME", "AudioSourceError", "CallbackSink", "Clock", "Engine", "EngineBusy", "EngineSettings",
    "EngineStats", "FileSource", "FrameInfo", "SinkFailure", "default_budget_ms",
    "GeneratorSource", "MicrophoneSource", "VideoFileSink", "VirtualCameraSink", "VirtualCameraUnavailable",
    "camera_install_hint", "fit_frame",
]
