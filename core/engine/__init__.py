"""The streaming engine: audio sources -> motion -> rendering -> paced frames -> sinks."""

from .engine import Engine, EngineSettings, EngineStats
from .sinks import (
    CallbackSink,
    FrameInfo,
    VideoFileSink,
    VirtualCameraSink,
    VirtualCameraUnavailable,
    camera_install_hint,
    fit_frame,
)
from .sources import AudioSourceError, FileSource, GeneratorSource, MicrophoneSource

__all__ = [
    "AudioSourceError", "CallbackSink", "Engine", "EngineSettings", "EngineStats", "FileSource", "FrameInfo",
    "GeneratorSource", "MicrophoneSource", "VideoFileSink", "VirtualCameraSink", "VirtualCameraUnavailable",
    "camera_install_hint", "fit_frame",
]
