"""Face + voice live (issue 25): the driving feed, the face + voice motion source, camera-to-frame latency, a camera
that disappears, the face leaving and returning, stale driving frames, drift at 30 / 60 fps, and `live --drive`.

Everything timed runs on a fake clock the test advances; no bound depends on how fast this machine is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core import layout
from core.device import DeviceSpec
from core.drive.camera import CameraFrame, CameraLostError
from core.drive.capture import DrivingEnded, VideoCamera, drive_problem
from core.drive.face_voice import FaceVoiceSource
from core.drive.feed import DrivingFeed, DrivingThread, FaceTracker
from core.drive.live import DriveLatency
from core.drive.mix import EYE_COLUMNS, HEAD_COLUMNS, MOUTH_COLUMNS
from core.engine.sinks import FrameInfo
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import Renderer
from tests.test_drive_offline import face_frames, write_video

REPO = Path(__file__).resolve().parents[1]
FPS = 25


class FakeClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSpeech:
    """A MotionSource giving one smooth speech row per pull (head nodding slowly, mouth opening and closing)."""

    name = "fake-speech"
    last_aux: dict = {}

    def __init__(self) -> None:
        self.k = 0
        self.resets = 0

    def use_models(self, models) -> None:
        pass

    def bind_portrait(self, portrait) -> None:
        pass

    def reset(self, portrait=None) -> None:
        self.resets += 1

    def configure(self, settings) -> None:
        pass

    def push_audio(self, samples) -> None:
        pass

    def row(self) -> np.ndarray:
        r = np.zeros((1, layout.MOTION_DIM), np.float32)
        r[0, layout.POSE] = 2.0 * np.sin(self.k / 10)
        r[0, MOUTH_COLUMNS] = 0.01 * np.sin(self.k / 3)
        self.k += 1
        return r

    def pull(self) -> np.ndarray:
        return self.row()

    def flush(self) -> np.ndarray:
        return np.zeros((0, layout.MOTION_DIM), np.float32)

    def latency_ms(self) -> float:
        return 0.0


class ListReader:
    """A camera stand-in: one frame per read, stamped with the fake clock's time; lost after the list."""

    name = "fake camera"

    def __init__(self, frames: list[np.ndarray], clock: FakeClock) -> None:
        self.frames, self.clock, self.closed = list(frames), clock, False

    def open(self):
        return self

    def read(self) -> CameraFrame | None:
        if not self.frames:
            raise CameraLostError("fake camera stopped sending frames (unplugged)")
        return CameraFrame(self.frames.pop(0), self.clock())

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def tiny(astronaut):
    torch.manual_seed(0)
    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), DeviceSpec(torch.device("cpu"),
                                                                                         torch.float32))
    return renderer, renderer.prepare(astronaut, "astronaut")


def _source(tiny, feed: DrivingFeed, clock: FakeClock, tracker: FaceTracker | None = None, **kw) -> FaceVoiceSource:
    renderer, portrait = tiny
    src = FaceVoiceSource(FakeSpeech(), feed, budget_s=kw.pop("budget_s", 0.6),
                          reanchor=tracker.reanchor if tracker else None, clock=clock, **kw)
    src.use_models(renderer.models)
    src.reset(portrait)
    return src


def _drive(tiny, frames: list[np.ndarray], **kw):
    """One driving step and one pull per output frame on a fake clock -> (mixed rows, speech rows, source)."""
    renderer, _ = tiny
    clock, feed = FakeClock(), DrivingFeed()
    tracker = FaceTracker(renderer.cropper)
    messages: list[str] = []
    thread = DrivingThread(ListReader(frames, clock), tracker, feed, on_message=messages.append)
    src = _source(tiny, feed, clock, tracker, **kw)
    rows, voice = [], []
    for _ in range(len(frames) + 20):
        clock.t += 1 / FPS
        thread.step()
        before = src.speech.k
        rows.append(src.pull()[0])
        src.speech.k = before
        voice.append(src.speech.row()[0])
    return np.array(rows), np.array(voice), src, messages


def test_face_leaving_and_returning_eases_without_a_jump(tiny, astronaut):
    """Face in view, gone (no face in those driving frames), back: the head follows the face, eases to speech while
    it is away and back when it returns; no frame-to-frame step is larger than the face's own motion plus one
    easing step (a hard switch would be several times larger), and the mouth is speech all along."""
    frames = face_frames(astronaut, 70, missing=range(20, 50))
    rows, voice, src, messages = _drive(tiny, frames)
    head = HEAD_COLUMNS
    assert src.rows_with_face == 40 and src.rows_without_face == 50 and not messages[:-1]
    np.testing.assert_allclose(rows[:, MOUTH_COLUMNS], voice[:, MOUTH_COLUMNS], atol=1e-6)
    # away long enough: pure speech; with the face fully back (ease done): the face, not the speech
    np.testing.assert_allclose(rows[40:50, head], voice[40:50, head], atol=1e-6)
    assert np.abs(rows[64:70, head] - voice[64:70, head]).max() > 1e-3
    step = np.abs(np.diff(rows[:, head + EYE_COLUMNS], axis=0)).max(axis=1)
    face_only = np.abs(np.diff(rows[14:20, head + EYE_COLUMNS], axis=0)).max()  # the face's own motion
    gap = np.abs(rows[19, head + EYE_COLUMNS] - voice[19, head + EYE_COLUMNS]).max()  # face vs speech when it left
    voice_step = np.abs(np.diff(voice[:, head + EYE_COLUMNS], axis=0)).max()
    bound = face_only + gap / 12 + voice_step + 1e-4
    assert step[20:].max() <= bound, (step[20:].max(), bound)
    assert gap > 2 * bound  # so a hard switch (a step of at least gap - the natural motion) would fail it


def test_face_only_takes_the_mouth_from_the_face_too(tiny, astronaut):
    """`--drive-mix face` (the app's "Face"): the mouth follows the face while it is in view, and eases to speech
    with everything else when it leaves."""
    from core.drive.mix import FACE_ONLY

    frames = face_frames(astronaut, 70, missing=range(20, 50))
    rows, voice, src, _ = _drive(tiny, frames, split=FACE_ONLY)
    mouth = MOUTH_COLUMNS
    default, _, _, _ = _drive(tiny, frames)
    assert np.abs(rows[5:20, mouth] - voice[5:20, mouth]).max() > 1e-4  # the face's mouth, not the speech's
    np.testing.assert_allclose(rows[:, HEAD_COLUMNS], default[:, HEAD_COLUMNS], atol=1e-6)  # the rest as before
    np.testing.assert_allclose(rows[40:50, mouth], voice[40:50, mouth], atol=1e-6)  # away: speech


def test_webcam_smoothing_steadies_the_face_rows(tiny, astronaut):
    """A jittery driving face (shifted and zoomed a little every frame): with the live default smoothing the head
    rows change far less from frame to frame, around the same place (no drift or bias)."""
    from core.drive.smooth import Smoothing

    frames = face_frames(astronaut, 60)
    raw, _, _, _ = _drive(tiny, frames)
    smooth, _, _, _ = _drive(tiny, frames, smoothing=Smoothing())
    head = HEAD_COLUMNS
    jitter = [np.abs(np.diff(r[20:60, head], axis=0)).mean() for r in (raw, smooth)]
    assert jitter[1] < 0.5 * jitter[0], jitter
    assert np.abs(raw[20:60, head].mean(0) - smooth[20:60, head].mean(0)).max() < 0.5 * np.abs(raw[20:60, head]).max()


def test_live_names_a_bad_drive_part_before_models_load(tmp_path, astronaut):
    r = _live_without_torch(tmp_path, astronaut, "--drive", "camera:7", "--drive-parts", "head,nose")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--drive-parts" in lines[0] and "'nose'" in lines[0], lines


def test_camera_that_disappears_mid_run_continues_on_speech(tiny, astronaut):
    frames = face_frames(astronaut, 15)
    rows, voice, src, messages = _drive(tiny, frames)  # the reader is lost after its 15 frames
    assert messages == ["Fake camera stopped sending frames (unplugged)."]  # once, though rows went on
    assert src.feed.gone and "source gone" in src.state
    np.testing.assert_allclose(rows[-3:], voice[-3:], atol=1e-6)  # the avatar carries on, on speech
    assert len(rows) == 35


def test_driving_thread_survives_a_failing_reader_and_closes_it():
    class Broken(ListReader):
        def read(self):
            raise OSError("driver crashed")

    feed, said = DrivingFeed(), []
    reader = Broken([], FakeClock())
    thread = DrivingThread(reader, None, feed, on_message=said.append)
    thread.start()
    thread.stop(5.0)
    assert not thread.alive and reader.closed and "driver crashed" in feed.gone and len(said) == 1


def test_stale_driving_frames_count_as_no_face(tiny, astronaut):
    """A driving frame older than the latency budget is not used: the row holds, then eases to speech."""
    renderer, portrait = tiny
    clock, feed = FakeClock(), DrivingFeed()
    tracker = FaceTracker(renderer.cropper)
    thread = DrivingThread(ListReader(face_frames(astronaut, 1), clock), tracker, feed)
    src = _source(tiny, feed, clock, tracker, budget_s=0.3)
    thread.step()
    src.pull()
    assert src.rows_with_face == 1 and src.stale_samples == 0
    clock.t += 0.31  # the camera froze: its last frame is now older than the budget
    for _ in range(30):
        src.pull()
        clock.t += 1 / FPS
    assert src.rows_with_face == 1 and src.rows_without_face == 30 and src.stale_samples == 1
    assert src.presence.level == 0.0


def test_camera_latency_is_output_time_minus_capture_time(tiny, astronaut):
    renderer, portrait = tiny
    clock, feed = FakeClock(), DrivingFeed()
    tracker = FaceTracker(renderer.cropper)
    thread = DrivingThread(ListReader(face_frames(astronaut, 3), clock), tracker, feed)
    src = _source(tiny, feed, clock, tracker)
    src.frame_base = lambda: 100  # the engine numbers this stream's rows from 100 (audio was shed before)
    sink = DriveLatency(src)
    captured = []
    for _ in range(3):
        thread.step()
        captured.append(clock.t)
        src.pull()
        clock.t += 0.04
    src.pull()  # no new driving frame: the same one is used again, with its own capture time
    for i in range(4):
        sink.write(None, FrameInfo(100 + i, 0.0, 0.0, captured[min(i, 2)] + 0.2 + 0.01 * i))
    sink.write(None, FrameInfo(101, 0.0, 0.0, 999.0, repeated=True))  # repeats are not new frames
    sink.write(None, FrameInfo(7, 0.0, 0.0, 999.0))  # a frame the source never made
    s = sink.summary()
    assert s["camera_driven_frames"] == 4
    np.testing.assert_allclose(sorted(sink.latency_s), [0.2, 0.21, 0.22, 0.23], atol=1e-9)
    assert s["camera_latency_ms_p50"] == pytest.approx(215.0, abs=0.1)
    src.reset()  # stale audio shed: the stream restarts; its rows are numbered from the new base
    src.frame_base = lambda: 200
    src.pull()
    assert src.drive_time(200) == pytest.approx(captured[2]) and src.drive_time(104) is None


class RateCamera:
    """A camera at `fps` on the fake clock: read() gives the newest frame that has arrived (None: none new)."""

    name = "rate camera"

    def __init__(self, fps: float, clock: FakeClock, image: np.ndarray) -> None:
        self.fps, self.clock, self.image = fps, clock, image
        self.t0, self.last = clock(), -1

    def open(self):
        return self

    def read(self) -> CameraFrame | None:
        k = int((self.clock() - self.t0) * self.fps + 1e-9)
        if k == self.last:
            return None
        self.last = k
        return CameraFrame(self.image, self.t0 + k / self.fps)

    def close(self) -> None:
        pass


class StillTracker:
    """The face found in every frame, through one window (the drift test is about timing, not detection)."""

    anchor = 1

    def __init__(self, crop: np.ndarray) -> None:
        self.crop = crop

    def track(self, image):
        return self.crop

    def reanchor(self) -> None:
        pass


@pytest.mark.parametrize("camera_fps", [30, 60])
def test_30_and_60_fps_cameras_drive_25_fps_without_drift(tiny, camera_fps):
    """Six seconds of 25 fps rows from a 30 / 60 fps camera: each row uses a frame at most one camera period plus
    one processing interval old, and the age does not grow (last second vs first)."""
    renderer, portrait = tiny
    clock, feed = FakeClock(), DrivingFeed()
    thread = DrivingThread(RateCamera(camera_fps, clock, portrait.face.crop), StillTracker(portrait.face.crop), feed)
    src = _source(tiny, feed, clock)
    ages = []
    for n in range(6 * FPS):
        clock.t += 1 / FPS
        thread.step()  # the thread keeps up with the camera: at most one new frame per output tick here
        src.pull()
        ages.append(clock.t - src.drive_time(n))
    ages = np.array(ages)
    assert ages.max() <= 1 / camera_fps + 1 / FPS + 1e-9
    assert abs(ages[-FPS:].mean() - ages[:FPS].mean()) < 1 / camera_fps


def test_video_standing_in_for_a_camera_is_paced_and_skips_backlog(tmp_path, astronaut):
    """A 60 fps video read by a slow consumer (every 40 ms of fake time) gives the newest frame due, stamped with
    its own time, never a growing backlog; at its end it is a camera gone (unless it loops)."""
    small = [np.full((32, 32, 3), i * 2, np.uint8) for i in range(120)]
    path = write_video(tmp_path / "v60.mp4", small, 60)
    clock = FakeClock()

    def sleep(s: float) -> None:
        clock.t += s

    cam = VideoCamera(path, clock=clock, sleep=sleep).open()
    t0, lags = clock.t, []
    with pytest.raises(DrivingEnded, match="v60.mp4 ended"):
        for _ in range(200):
            f = cam.read()
            lags.append(clock.t - f.capture_time)
            clock.t += 0.04
    assert max(lags) < 1 / 60 + 1e-6 and 45 <= len(lags) <= 52  # 2 s of video at 25 reads a second
    looped = VideoCamera(path, loop=True, clock=clock, sleep=sleep).open()
    assert all(looped.read() is not None for _ in range(300))  # 5 s of a 2 s video
    looped.close()
    assert t0 < clock.t


def test_drive_problems_are_said_before_any_model_loads(tmp_path):
    assert "camera 7 cannot be opened" in drive_problem("camera:7") and "--drive camera:N" in drive_problem("camera:7")
    assert "no such video file" in drive_problem(str(tmp_path / "none.mp4"))
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert "not a video FFmpeg can read" in drive_problem(str(tmp_path / "bad.mp4"))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def _live_without_torch(tmp_path, astronaut, *args: str) -> subprocess.CompletedProcess:
    """`live --input test ARGS` in a process that fails if torch was imported by the time main returns."""
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    code = ("import sys; from core.__main__ import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported before the check'; sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, "live", "--portrait", str(portrait), "--input", "test", *args,
                           "--synthetic-weights", "tiny"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)


def test_live_with_an_unreadable_camera_exits_2_before_models_load(tmp_path, astronaut):
    r = _live_without_torch(tmp_path, astronaut, "--drive", "camera:7")
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and "camera 7 cannot be opened" in lines[0] and "--drive camera:N" in lines[0], lines


@pytest.mark.slow
def test_live_drive_video_reports_camera_latency(tmp_path, astronaut, speech_wav):
    """`live --drive VIDEO --input SPEECH`: face + voice, the stats JSON has camera-to-frame latency, and the video
    ending (shorter than the speech) is said once while the run goes on to the end of the speech."""
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    video = write_video(tmp_path / "face.mp4", face_frames(astronaut, 60, missing=range(25, 35)), 30)
    out = tmp_path / "s.json"
    r = subprocess.run([sys.executable, "-m", "core", "live", "--portrait", str(portrait), "--input", str(speech_wav),
                        "--drive", str(video), "--seconds", "4", "--synthetic-weights", "tiny", "--device", "cpu",
                        "--renderer", "full", "--stats-json", str(out)], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["camera_driven_frames"] > 10 and s["drive_rows_with_face"] >= s["camera_driven_frames"]
    assert 0 < s["camera_latency_ms_p50"] <= s["camera_latency_ms_p95"] <= s["camera_latency_ms_max"]
    assert s["latency_ms_p50"] > 0 and "ended" in s["drive_source_gone"]
    assert r.stderr.count("face.mp4 ended") == 1 and "face driving on" in r.stderr


def test_live_drive_binds_to_the_engine_and_lite_says_once_what_it_drops(tiny, astronaut):
    from types import SimpleNamespace

    from core.drive.live import LITE_NOTE, LiveDrive
    from core.engine import EngineSettings
    from core.engine.policy import CPU_BUDGET_MS

    renderer, _ = tiny
    said: list[str] = []
    for backend in ("lite", "eager"):
        sinks: list = []
        engine = SimpleNamespace(frame_base=12, add_sink=sinks.append,
                                 settings=EngineSettings(latency_budget_ms=450.0),
                                 renderer=SimpleNamespace(backend_name=backend, spec=renderer.spec))
        reader = ListReader(face_frames(astronaut, 2), FakeClock())
        drive = LiveDrive("camera", renderer.cropper, FakeSpeech(), on_message=said.append, reader=reader)
        drive.open()
        drive.start(engine)
        drive.thread.stop(5.0)
        assert sinks == [drive.latency] and drive.source.budget_s == 0.45 and drive.source.frame_base() == 12
        assert not drive.thread.alive and reader.closed
        drive.configure(EngineSettings(latency_budget_ms=250.0), engine)  # the budget changed mid-run
        assert drive.source.budget_s == 0.25
        drive.configure(EngineSettings(), engine)  # the device's default (a CPU here)
        assert drive.source.budget_s == CPU_BUDGET_MS / 1000
    assert said.count(LITE_NOTE) == 1 and "brows and smiles are dropped" in LITE_NOTE


def test_a_driving_frame_that_would_reach_the_screen_after_the_budget_is_not_used(tiny, astronaut):
    """Rows have lately taken 0.5 s from the source to the screen (learnt from emitted frames): with a 0.6 s budget
    a driving frame 0.15 s old would be shown 0.65 s after capture, so it counts as no face; a 0.05 s old one is
    used. The learnt time decays once rows are quicker again."""
    renderer, _ = tiny
    clock, feed = FakeClock(), DrivingFeed()
    tracker = FaceTracker(renderer.cropper)
    thread = DrivingThread(ListReader(face_frames(astronaut, 3), clock), tracker, feed)
    src = _source(tiny, feed, clock, tracker, budget_s=0.6)
    sink = DriveLatency(src)
    thread.step()
    src.pull()  # row 0, pulled at clock.t with a fresh frame
    sink.write(None, FrameInfo(0, 0.0, 0.0, clock.t + 0.5))
    assert src.delay_s == pytest.approx(0.5) and src.rows_with_face == 1
    thread.step()  # a new frame, captured now ...
    clock.t += 0.15  # ... but 0.15 s old when the next row takes it
    src.pull()
    assert src.rows_with_face == 1 and src.stale_samples == 1
    thread.step()
    clock.t += 0.05
    src.pull()
    assert src.rows_with_face == 2 and src.stale_samples == 1
    for i in range(3, 40):  # quick rows again: the learnt delay falls
        src.pull()
        sink.write(None, FrameInfo(i - 1, 0.0, 0.0, clock.t + 0.1))
    assert src.delay_s < 0.45


def test_face_tracker_keeps_one_window_until_asked_for_a_new_one(tiny, astronaut):
    renderer, _ = tiny
    tracker = FaceTracker(renderer.cropper)
    face, moved = face_frames(astronaut, 2)
    crop = tracker.track(face)
    window = tracker.window.copy()
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8 and tracker.anchor == 1
    assert tracker.track(np.full_like(face, 128)) is None  # no face: nothing cropped, the window stays
    assert tracker.track(moved) is not None and tracker.anchor == 1
    np.testing.assert_array_equal(tracker.window, window)  # a moving head moves inside the one window
    tracker.reanchor()
    assert tracker.track(np.full_like(face, 128)) is None and tracker.anchor == 1  # the request waits for a face
    assert tracker.track(moved) is not None and tracker.anchor == 2 and not np.array_equal(tracker.window, window)


def _session_with(tiny, said: list, errors: list):
    from core.session import LiveSession
    from tests.engine_fakes import WindowMotion

    renderer, _ = tiny
    return LiveSession(on_error=errors.append, on_message=said.append, build=lambda cfg: (renderer, WindowMotion(1)))


def test_session_with_an_unreadable_camera_fails_at_start_and_leaves_nothing_running(tiny, astronaut):
    from core.drive.camera import CameraError
    from core.engine import EngineSettings
    from core.session import InputChoice, SessionConfig

    said, errors = [], []
    session = _session_with(tiny, said, errors)
    with pytest.raises(CameraError, match="camera 7 cannot be opened"):
        session.start(SessionConfig(engine=EngineSettings(), drive="camera:7"), astronaut, InputChoice("generator"))
    assert session.engine is None and session.drive is None and not session.running and session.alive_threads() == 0
    session.close()


class GatedCamera:
    """A camera that shows a face until `unplug` is set, then is gone (whatever the machine's speed)."""

    name = "camera 0"

    def __init__(self, frame: np.ndarray) -> None:
        import threading

        self.frame, self.unplug, self.closed = frame, threading.Event(), False

    def open(self):
        return self

    def read(self) -> CameraFrame:
        import time

        if self.unplug.is_set():
            raise CameraLostError("camera 0 stopped sending frames (unplugged or taken by another program); the "
                                  "avatar continues without it")
        time.sleep(0.02)
        return CameraFrame(self.frame, time.monotonic())

    def close(self) -> None:
        self.closed = True


def test_session_goes_on_on_speech_when_the_camera_is_unplugged(tiny, astronaut, monkeypatch):
    """A real engine run: the face drives rows; the camera is unplugged mid-run; that is said once and the run goes
    on, on speech."""
    import time

    import core.drive.live as live_drive
    from core.engine import EngineSettings
    from core.session import InputChoice, SessionConfig

    camera = GatedCamera(face_frames(astronaut, 1)[0])
    monkeypatch.setattr(live_drive, "driving_reader", lambda spec, loop=False, clock=None: camera)
    said, errors = [], []
    session = _session_with(tiny, said, errors)

    def wait_for(predicate) -> None:
        deadline = time.monotonic() + 120
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)

    session.start(SessionConfig(engine=EngineSettings(latency_budget_ms=5000.0), drive="camera"), astronaut,
                  InputChoice("generator"))
    try:
        drive = session.drive
        src = drive.source
        wait_for(lambda: src.rows_with_face > 0)
        camera.unplug.set()
        wait_for(lambda: drive.feed.gone)
        after = src.rows_without_face
        wait_for(lambda: src.rows_without_face > after + 5)  # rows keep coming: the run did not die
        assert src.rows_with_face > 0 and drive.feed.gone and session.running and not errors
        assert said == ["Camera 0 stopped sending frames (unplugged or taken by another program); the avatar "
                        "continues without it."]
        assert "source gone" in src.state and camera.closed
    finally:
        session.close()
    assert session.drive is None and not drive.thread.alive


@pytest.mark.slow
def test_live_lite_drive_says_once_what_it_drops(tmp_path, astronaut):
    """`live --renderer lite --drive VIDEO`: face driving through the atlas, the limits said once, camera latency
    reported (the atlas is built first: ~15 s here)."""
    from core.drive.live import LITE_NOTE

    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    video = write_video(tmp_path / "face.mp4", face_frames(astronaut, 30), 30)
    out = tmp_path / "s.json"
    r = subprocess.run([sys.executable, "-m", "core", "live", "--portrait", str(portrait), "--input", "test",
                        "--drive", str(video), "--loop", "--seconds", "3", "--synthetic-weights", "tiny",
                        "--device", "cpu", "--renderer", "lite", "--stats-json", str(out), "--quiet"], cwd=REPO,
                       env={**_env(), "HEADCAST_CACHE_DIR": str(tmp_path / "cache")}, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["renderer"] == "lite" and r.stderr.count(LITE_NOTE) == 1
    assert s["camera_driven_frames"] > 0 and s["camera_latency_ms_p50"] > 0 and s["drive_source_gone"] is None


def test_rows_are_plain_deltas_even_when_none_are_ready(tiny):
    """Speech sources with the absolute-lip column (71 wide) come out as 70-wide deltas, and an empty pull is 70
    wide too: the engine joins a pull and a flush at the end of a file."""

    class AbsoluteLipSpeech(FakeSpeech):
        def pull(self) -> np.ndarray:
            return np.zeros((0, layout.MOTION_DIM + 1), np.float32)

        def flush(self) -> np.ndarray:
            return np.ones((2, layout.MOTION_DIM + 1), np.float32)

    renderer, portrait = tiny
    src = FaceVoiceSource(AbsoluteLipSpeech(), DrivingFeed(), budget_s=0.6, clock=FakeClock())
    src.use_models(renderer.models)
    src.reset(portrait)
    rows = np.concatenate((src.pull(), src.flush()))
    assert rows.shape == (2, layout.MOTION_DIM)
