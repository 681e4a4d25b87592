"""core.session.LiveSession with timed stand-in models: camera policy, sink failures reported by the sink
itself, file input that ends (or loops), the input level, the pipeline cache and input parsing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.engine import EngineSettings, SinkFailure
from core.motion.source import MotionSettings
from core.session import InputChoice, LiveSession, MicrophoneNotConnected, SessionConfig, find_input_device
from core.timebase import SAMPLE_RATE
from tests.engine_fakes import FakeRenderer, WindowMotion

PORTRAIT = np.zeros((8, 8, 3), np.uint8)


def config(**kw) -> SessionConfig:
    return SessionConfig(engine=EngineSettings(motion=MotionSettings(window=1)), **kw)


class Reports:
    def __init__(self) -> None:
        self.errors, self.messages, self.camera = [], [], []
        self.finished = threading.Event()

    def session(self, builds: list | None = None) -> LiveSession:
        def build(cfg):
            if builds is not None:
                builds.append(cfg.pipeline_key())
            return FakeRenderer(per_frame=0.001), WindowMotion(1)

        return LiveSession(on_error=self.errors.append, on_message=self.messages.append,
                           on_camera=self.camera.append, on_finished=self.finished.set, build=build)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def write(self, frame, info) -> None:
        self.n += 1

    def close(self) -> None:
        pass


class BrokenCamera(Counter):
    """Fails like a virtual camera taken away mid-run: the sink names itself in the failure."""

    def write(self, frame, info) -> None:
        super().write(frame, info)
        if self.n == 5:
            raise SinkFailure(self, "the virtual camera /dev/video9 stopped accepting frames")


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_failing_camera_is_dropped_with_a_message_and_the_run_goes_on():
    reports = Reports()
    session = reports.session()
    preview, camera = Counter(), BrokenCamera()
    session.start(config(), PORTRAIT, InputChoice("generator"), sinks=(preview, camera))
    session.camera_sink = camera  # what _open_camera sets when a real camera opened
    wait_until(lambda: camera.n >= 5)
    n = preview.n
    wait_until(lambda: preview.n > n + 5)  # the preview keeps going
    session.close()
    assert camera.n == 5 and not reports.errors
    assert any("virtual camera stopped" in m and "/dev/video9" in m for m in reports.messages)
    assert reports.camera and reports.camera[-1].startswith("stopped:")


def test_other_sink_failures_end_the_run_through_on_error():
    reports = Reports()
    session = reports.session()
    session.start(config(), PORTRAIT, InputChoice("generator"), sinks=(BrokenCamera(),))
    wait_until(lambda: reports.errors)
    session.close()
    assert isinstance(reports.errors[0], SinkFailure)


def test_without_a_camera_backend_the_hint_is_given_and_the_run_starts(monkeypatch):
    import core.engine as engine_module

    def no_camera(**kw):
        raise engine_module.VirtualCameraUnavailable("No virtual camera could be opened (no backend).")

    monkeypatch.setattr(engine_module, "VirtualCameraSink", no_camera)
    reports = Reports()
    session = reports.session()
    preview = Counter()
    text = session.start(config(), PORTRAIT, InputChoice("generator"), camera=True, sinks=(preview,))
    wait_until(lambda: preview.n > 3)
    session.close()
    assert text and "camera" in text.lower()
    assert any("run goes on without it" in m for m in reports.messages)


def test_a_file_plays_to_its_end_then_says_so_or_loops(tmp_path):
    from scipy.io import wavfile

    wav = tmp_path / "beep.wav"
    t = np.arange(int(0.6 * SAMPLE_RATE)) / SAMPLE_RATE
    wavfile.write(wav, SAMPLE_RATE, (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    reports = Reports()
    session = reports.session()
    session.start(config(), PORTRAIT, InputChoice("file", str(wav)))
    wait_until(lambda: session.level.peak > -10)  # the level meter hears the file
    assert reports.finished.wait(10), "a finished file must be reported"
    session.close()
    looping = Reports()
    session = looping.session()
    session.start(config(loop_files=True), PORTRAIT, InputChoice("file", str(wav)))
    time.sleep(1.5)  # more than twice the file's length
    assert session.running and not looping.finished.is_set()
    session.close()


def test_the_pipeline_is_built_once_per_key():
    builds: list = []
    session = Reports().session(builds)
    for _ in range(3):
        session.start(config(), PORTRAIT, InputChoice("generator"))
        session.stop()
    session.start(config(device="cpu"), PORTRAIT, InputChoice("generator"))
    session.close()
    assert len(builds) == 2


def test_input_choice_parsing_and_unknown_microphone():
    assert InputChoice.parse("mic") == InputChoice("mic")
    assert InputChoice.parse("mic:USB headset") == InputChoice("mic", "USB headset")
    assert InputChoice.parse("test") == InputChoice("generator")
    assert InputChoice.parse("speech.wav") == InputChoice("file", "speech.wav")
    pytest.importorskip("sounddevice")
    with pytest.raises(MicrophoneNotConnected, match="not connected"):
        find_input_device("a microphone that does not exist 1234")
