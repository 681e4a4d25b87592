"""Frame sinks: where finished frames go (preview callback, virtual camera, video file)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.timebase import SAMPLE_RATE


@dataclass(frozen=True)
class FrameInfo:
    index: int  # frame number in the stream (repeats keep the number of the frame they repeat)
    pts: float  # presentation time in seconds from the start of the stream
    capture_time: float  # time.monotonic() when the last audio sample of this frame was captured
    emit_time: float  # time.monotonic() when the frame was handed to the sinks
    repeated: bool = False  # True when the pacer re-sent the previous frame (underrun)


class CallbackSink:
    """Calls `fn(frame, info)` on the engine's pacer thread; `frame` is only valid during the call."""

    def __init__(self, fn: Callable[[np.ndarray, FrameInfo], None]) -> None:
        self.fn = fn

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        self.fn(frame, info)

    def close(self) -> None:
        pass


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit inside width x height and letterbox with black; no-op when the size already matches."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out[y : y + nh, x : x + nw] = cv2.resize(frame, (nw, nh), interpolation=interpolation)
    return out


class VirtualCameraUnavailable(RuntimeError):
    """No virtual-camera backend: the message says what to install on this OS."""


def camera_install_hint(system: str | None = None) -> str:
    """What to install so pyvirtualcam finds a virtual camera on this OS: a one-line summary, then the steps.

    The only copy of this text: the app's camera label shows the first line and its tooltip the rest."""
    system = system or platform.system()
    if system == "Linux":
        return ("No virtual camera device: install v4l2loopback.\n"
                "  sudo apt install v4l2loopback-dkms\n"
                "  sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Headcast")
    if system == "Windows":
        return ("No virtual camera: install OBS Studio.\n"
                "Install OBS Studio 28 or newer and start its Virtual Camera once; it registers the camera.")
    if system == "Darwin":
        return ("No virtual camera: install OBS Studio.\n"
                "Install OBS Studio 30 or newer, start its Virtual Camera once and allow the camera extension "
                "in System Settings > Privacy & Security.")
    return f"Virtual cameras are not supported on {system}."


class SinkFailure(RuntimeError):
    """A sink stopped working; `sink` says which, so the owner can tell the camera from the preview without
    wrapping sinks. Sinks raise it themselves with a message that names the problem and the fix; the engine
    wraps any other exception from `write` in it."""

    def __init__(self, sink, cause: BaseException | str) -> None:
        super().__init__(str(cause))
        self.sink = sink
        self.cause = cause if isinstance(cause, BaseException) else None


class VirtualCameraSink:
    """Sends frames to a virtual webcam through pyvirtualcam (v4l2loopback, OBS, Unity Capture)."""

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 25, backend: str | None = None,
                 device: str | None = None) -> None:
        import pyvirtualcam

        self.width, self.height = width, height
        try:
            self.camera = pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                              backend=backend, device=device)
        except Exception as exc:  # pyvirtualcam raises RuntimeError when no backend works
            raise VirtualCameraUnavailable(f"No virtual camera could be opened ({exc}). {camera_install_hint()}") \
                from exc
        self.backend = self.camera.backend
        self.device = self.camera.device

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        try:
            self.camera.send(fit_frame(frame, self.width, self.height))
        except Exception as exc:  # the device was removed or taken by another program
            raise SinkFailure(self, f"the virtual camera {self.device} stopped accepting frames ({exc}). "
                                    "Check that no other program holds it, then start again.") from exc

    def describe(self) -> str:
        return f"{self.backend}: {self.device}"

    def close(self) -> None:
        self.camera.close()


AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
AAC_BITRATE_PER_CHANNEL = 96_000  # 96 kb/s mono, 192 kb/s stereo: transparent for speech


class VideoFileSink:
    """H.264 + AAC mp4 through PyAV, written to a temporary name and renamed only by a successful close().

    `audio`: mono samples at `audio_rate`, or (channels, n) as the user's file had them; the mp4 keeps that rate
    (AAC rates; others become 48 kHz) and up to two channels (more are folded down to stereo, in the WAV channel
    order; `AudioClip.stereo()` folds a file's own layout). The temporary
    name carries the process id, so a killed run's leftover is removed by the next run (core.atomic).
    """

    def __init__(self, path: str | Path, fps: int = 25, audio: np.ndarray | None = None, crf: int = 20,
                 audio_rate: int = SAMPLE_RATE) -> None:
        import av

        from core.atomic import temporary_path

        self.path = Path(path)
        self.tmp = temporary_path(self.path, ".partial.mp4")
        self.fps = fps
        self.audio, self.audio_rate = self._audio_layout(audio, audio_rate)
        try:
            self._container = av.open(str(self.tmp), "w", format="mp4")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self._video = None
        self._crf = crf
        self.frames = 0
        self._audio = None

    @staticmethod
    def _audio_layout(audio: np.ndarray | None, rate: int) -> tuple[np.ndarray | None, int]:
        """(channels<=2, n) float32 at an AAC sample rate."""
        if audio is None:
            return None, rate
        a = np.asarray(audio, np.float32)
        a = a[None] if a.ndim == 1 else a
        if a.shape[0] > 2:  # a file's surround channels: pass AudioClip.stereo() to keep their layout
            from core.audio.io import default_layout, downmix_matrix

            a = downmix_matrix(default_layout(a.shape[0])) @ a
        if rate not in AAC_RATES:
            from core.audio.io import resample

            a, rate = resample(a, rate, 48000), 48000
        return np.ascontiguousarray(a), int(rate)

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        import av

        if self._video is None:
            h, w = frame.shape[:2]
            self._video = self._container.add_stream("libx264", rate=self.fps, options={"crf": str(self._crf)})
            self._video.width, self._video.height = w - w % 2, h - h % 2
            self._video.pix_fmt = "yuv420p"
            self._video.time_base = Fraction(1, self.fps)
            if self.audio is not None and self.audio.shape[1]:  # every stream must exist before the first packet
                layout = "stereo" if self.audio.shape[0] == 2 else "mono"
                self._audio = self._container.add_stream("aac", rate=self.audio_rate, layout=layout)
                self._audio.bit_rate = AAC_BITRATE_PER_CHANNEL * self.audio.shape[0]
        frame = frame[: self._video.height, : self._video.width]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        self._container.mux(self._video.encode(vf))
        self.frames += 1

    def _write_audio(self) -> None:
        import av

        stream = self._audio
        samples = self.audio
        layout = "stereo" if samples.shape[0] == 2 else "mono"
        step = 1024
        for i in range(0, samples.shape[1], step):
            chunk = np.ascontiguousarray(samples[:, i : i + step])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            af.sample_rate = self.audio_rate
            af.pts = i
            self._container.mux(stream.encode(af))
        self._container.mux(stream.encode(None))

    def close(self) -> None:
        """Finish the file and move it into place; on failure the partial file is removed."""
        try:
            if self._video is not None:
                self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._write_audio()
            self._container.close()
            if self.frames == 0:
                raise RuntimeError("no frames were written")
            from core.atomic import commit

            commit(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial output (called on errors and cancellations)."""
        try:
            self._container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)
