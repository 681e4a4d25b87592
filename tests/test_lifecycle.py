"""Issue 23: the live path's lifecycles (session -> engine run -> worker) and what each one owns. Every test here
failed on the code before issue 23; none depends on how fast the machine is (fake costs run on the engine's
clock, and bounds compare figures of the same run with each other)."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest
import torch

from core.audio.io import AudioLoadError
from core.engine import (
    CallbackSink,
    Clock,
    Engine,
    EngineBusy,
    EngineSettings,
    FileSource,
    GeneratorSource,
)
from core.engine.sources import MicrophoneSource
from core.layout import MOTION_DIM
from core.motion.source import MotionSettings
from core.session import InputChoice, LiveSession, MicrophoneNotConnected, SessionConfig
from core.timebase import SAMPLES_PER_FRAME
from tests.engine_fakes import FakePortrait, FakeRenderer, WindowMotion

PORTRAIT = np.zeros((8, 8, 3), np.uint8)


def config(**kw) -> SessionConfig:
    return SessionConfig(engine=EngineSettings(motion=MotionSettings(window=1)), **kw)


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def workers_alive() -> int:
    return sum(t.is_alive() and t.name in ("headcast-worker", "headcast-pacer", "headcast-atlas")
               for t in threading.enumerate())


# ---------------------------------------------------------------- session start: nothing left open on bad input
class FakeCamera:
    made: list = []

    def __init__(self, width, height, fps) -> None:
        self.closed = False
        FakeCamera.made.append(self)

    def describe(self) -> str:
        return "fake camera"

    def write(self, frame, info) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("bad", ["missing file", "missing microphone"])
def test_bad_input_leaves_no_camera_open(monkeypatch, tmp_path, bad):
    import core.engine

    monkeypatch.setattr(core.engine, "VirtualCameraSink", FakeCamera)
    FakeCamera.made = []

    def no_mic(name):
        raise MicrophoneNotConnected("The microphone 'usb' is not connected.")

    session = LiveSession(build=lambda cfg: (FakeRenderer(), WindowMotion(1)), resolve_mic=no_mic)
    choice = InputChoice("file", str(tmp_path / "missing.wav")) if bad == "missing file" else InputChoice("mic", "usb")
    with pytest.raises((AudioLoadError, MicrophoneNotConnected)):
        session.start(config(), PORTRAIT, choice, camera=True)
    assert all(cam.closed for cam in FakeCamera.made), "the camera opened for the failed start is still open"
    assert session.engine is None
    session.close()
    assert workers_alive() == 0


# ---------------------------------------------------------------- stragglers belong to the session, across starts
def test_a_stopped_runs_render_never_overlaps_the_next_start():
    """Stop returns while a (slow, CPU) render goes on; the next start builds a new Engine but must not render
    with the same models until that render has ended, and close() leaves no thread inside a render."""
    renderer = FakeRenderer(per_batch=0.6)
    session = LiveSession(build=lambda cfg: (renderer, WindowMotion(1)))
    session.start(config(), PORTRAIT, InputChoice("generator"))
    wait_until(lambda: renderer.active == 1)
    session.stop(timeout=0.01)  # the render in progress outlives stop
    session.start(config(), PORTRAIT, InputChoice("generator"))  # waits for it, then starts
    wait_until(lambda: session.engine.stats().frames_rendered >= 1)  # the new run has rendered
    session.stop(timeout=0.01)
    session.close(timeout=30)
    assert renderer.max_active == 1, "two runs rendered at once with the same renderer"
    assert workers_alive() == 0 and session.alive_threads() == 0


def test_start_refuses_with_a_clear_message_while_the_old_render_goes_on():
    renderer = FakeRenderer(per_batch=1.0)
    session = LiveSession(build=lambda cfg: (renderer, WindowMotion(1)))
    session.start(config(), PORTRAIT, InputChoice("generator"))
    wait_until(lambda: renderer.active == 1)
    session.stop(timeout=0.01)
    session.restart_wait_s = 0.01
    with pytest.raises(EngineBusy, match="still finishing a render"):
        session.start(config(), PORTRAIT, InputChoice("generator"))
    session.close(timeout=30)
    assert renderer.max_active == 1 and workers_alive() == 0


# ---------------------------------------------------------------- the pinned host ring never overwrites a queued frame
class IndexMotion(WindowMotion):
    """One row per frame whose first number is the frame's index in the stream (what the renderer draws)."""

    def pull(self) -> np.ndarray:
        start = self.pulled
        rows = super().pull()
        rows[:, 0] = np.arange(start, start + len(rows))
        return rows


class PinnedRenderer(FakeRenderer):
    """Stands in for a CUDA renderer: it writes each frame's index into the host buffer the engine hands it."""

    def __init__(self) -> None:
        super().__init__(per_frame=0.001)
        self.spec = types.SimpleNamespace(device=torch.device("cpu"), is_cuda=True, describe=lambda: "fake CUDA")

    def render(self, portrait, motion, out=None):
        assert out is not None, "a CUDA renderer gets a host buffer from the engine"
        frames = out.numpy()
        for i, row in enumerate(motion):
            frames[i] = int(row[0]) % 256
        return frames


def test_pinned_host_buffers_are_not_reused_while_a_frame_is_queued(monkeypatch):
    """Real time renders one frame per batch; at 5 fps output the pacer queue holds 9 of them. Each frame shown
    must still be the one rendered for it (a 5-slot ring overwrote queued frames)."""
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, pin_memory=False, **k: real_empty(*a, **k))  # no CUDA here
    engine = Engine(PinnedRenderer(), IndexMotion(1),
                    EngineSettings(fps=5, latency_budget_ms=60_000, motion=MotionSettings(window=1)))
    engine.set_portrait(PORTRAIT)
    wrong, shown = [], []

    def check(frame, info) -> None:
        shown.append(info.index)
        if frame[0, 0, 0] != info.index % 256:
            wrong.append((info.index, int(frame[0, 0, 0])))

    engine.add_sink(CallbackSink(check))
    engine.start(GeneratorSource(clock=engine.clock))
    wait_until(lambda: len(shown) >= 12 and engine.stats().frames_rendered >= 30, timeout=60)
    ring_frames = engine._ring.frames
    engine.close()
    assert not wrong, f"frames overwritten while queued (index, content): {wrong[:5]}"
    # single-frame batches take single-frame buffers: the queue (9) + the frame shown + the one rendering, at most
    assert ring_frames <= 9 + 2 + 1, ring_frames


# ---------------------------------------------------------------- latency includes the sinks and input buffering
def test_reported_latency_ends_when_the_sinks_have_the_frame():
    engine = Engine(FakeRenderer(per_frame=0.001), WindowMotion(1), EngineSettings(motion=MotionSettings(window=1)))
    engine.set_portrait(PORTRAIT)
    measured = []

    def slow_camera(frame, info) -> None:
        time.sleep(0.03)  # a camera write
        if not info.repeated:
            measured.append(engine.clock.now() - info.capture_time)

    engine.add_sink(CallbackSink(slow_camera))
    engine.start(GeneratorSource(clock=engine.clock))
    wait_until(lambda: len(measured) >= 25, timeout=60)
    engine.stop()
    stats = engine.stats()
    # every reported figure is stamped after its frame's writes, so its median is at least the sink's own
    assert stats.latency_ms_p50 >= 1000 * float(np.median(measured)) - 1e-6, (stats.latency_ms_p50, measured)
    engine.close()


class FakeStream:
    """sounddevice.InputStream as the callback sees it on ALSA/PulseAudio: ADC time 0."""

    def __init__(self, callback, **kw) -> None:
        self.callback, self.time, self.latency, self.blocksize = callback, 100.0, 0.05, kw["blocksize"]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_capture_time_without_adc_time_counts_the_block_and_input_latency(monkeypatch):
    import sys

    streams = []
    fake_sd = types.SimpleNamespace(InputStream=lambda **kw: streams.append(FakeStream(**kw)) or streams[-1])
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sd)
    got = []
    mic = MicrophoneSource(block=320)
    mic.start(lambda samples, capture: got.append(capture))
    before = time.monotonic()
    info = types.SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
    streams[0].callback(np.zeros((320, 1), np.float32), 320, info, None)
    # the block's first sample was captured one block (20 ms) plus the input latency (50 ms) before the callback
    assert got[0] <= before - 0.02 - 0.05 + 1e-3 and got[0] >= before - 0.02 - 0.05 - 1.0
    mic.stop()


# ---------------------------------------------------------------- a portrait switch is one step on the worker
class BoundMotion(WindowMotion):
    """Remembers the portrait its lip/eye tables belong to; a slow pull gives a racing switch time to land."""

    def reset(self, portrait=None) -> None:
        super().reset(portrait)
        self.bound = portrait

    def bind_portrait(self, portrait) -> None:
        self.bound = portrait

    def pull(self) -> np.ndarray:
        """One row on every pull once audio has begun, after a pause in which a racing switch can land."""
        time.sleep(0.008)
        return np.zeros((1 if self.samples else 0, MOTION_DIM), np.float32)


class CheckingRenderer(FakeRenderer):
    def __init__(self, motion: BoundMotion) -> None:
        super().__init__(per_frame=0.001)
        self.motion, self.mismatched, self.rendered = motion, 0, []

    def prepare(self, image, source_name=None, face=None, on_progress=None, cancel=None):
        return FakePortrait(self.size)  # a new object per call: a new portrait

    def render(self, portrait, motion, out=None):
        if self.motion.bound is not portrait:
            self.mismatched += 1
        self.rendered.append(portrait)
        return super().render(portrait, motion, out)


def test_no_frame_of_a_new_portrait_uses_the_old_portraits_tables():
    motion = BoundMotion(1)
    renderer = CheckingRenderer(motion)
    engine = Engine(renderer, motion, EngineSettings(motion=MotionSettings(window=1)))
    engine.set_portrait(PORTRAIT)
    engine.start(GeneratorSource(clock=engine.clock))
    switched = []
    for _ in range(6):
        wait_until(lambda: len(renderer.rendered) > 0)
        switched.append(engine.set_portrait(PORTRAIT))
        n = len(renderer.rendered)
        wait_until(lambda n=n: len(renderer.rendered) > n)
    engine.close()
    assert renderer.mismatched == 0, f"{renderer.mismatched} batches rendered a portrait with another's tables"
    assert renderer.rendered[-1] is switched[-1]


# ---------------------------------------------------------------- lite-mode switches: the newest request wins
class AtlasRenderer(FakeRenderer):
    """Portraits named 'slow*' need a long (cancellable) atlas build; the session must cancel a superseded one."""

    def __init__(self) -> None:
        super().__init__(per_frame=0.001)
        self.built: set[str] = set()
        self.cancelled: list[str] = []
        self.portraits: dict[str, FakePortrait] = {}

    def ready(self, image, face=None) -> bool:
        return not isinstance(image, str) or image in self.built

    def has_atlas(self, image, face=None) -> bool:  # what the code before issue 23 asked
        return self.ready(image, face)

    def prepare(self, image, source_name=None, face=None, on_progress=None, cancel=None):
        name = image if isinstance(image, str) else "first"
        if name not in self.built:
            deadline = time.monotonic() + (1.0 if name == "slow-a" else 0.05)
            while time.monotonic() < deadline:
                if cancel is not None and cancel():
                    self.cancelled.append(name)
                    raise RuntimeError("atlas build cancelled")
                time.sleep(0.01)
            self.built.add(name)
        portrait = self.portraits.setdefault(name, FakePortrait(self.size))
        portrait.key = name
        return portrait

    def prepare_in_background(self, image, on_progress=None, cancel=None, face=None):  # the old interface
        from concurrent.futures import Future

        future: Future = Future()

        def run() -> None:
            try:
                future.set_result(self.prepare(image, on_progress=on_progress, cancel=cancel, face=face))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, name="headcast-atlas", daemon=True).start()
        return future


def test_the_newest_lite_portrait_request_wins_and_the_older_build_is_cancelled():
    renderer = AtlasRenderer()
    session = LiveSession(build=lambda cfg: (renderer, WindowMotion(1)))
    session.start(config(), PORTRAIT, InputChoice("generator"))
    session.set_portrait("slow-a")
    time.sleep(0.05)
    session.set_portrait("slow-b")
    wait_until(lambda: session.engine._portrait.key == "slow-b")
    time.sleep(1.3)  # the older build would have finished by now
    assert session.engine._portrait.key == "slow-b", "an older portrait request landed after the newer one"
    assert renderer.cancelled == ["slow-a"]
    session.close(timeout=30)
    assert workers_alive() == 0


# ---------------------------------------------------------------- cold batch sizes do not drive shedding
class ColdSizesRenderer(FakeRenderer):
    """1 ms a frame, but the first render at each batch size costs 2 s (a CUDA graph capture)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(per_frame=0.001, clock=clock)
        self.sizes: set[int] = set()

    def render(self, portrait, motion, out=None):
        if len(motion) not in self.sizes:
            self.sizes.add(len(motion))
            self.clock.sleep(2.0)
        return super().render(portrait, motion, out)


def test_a_capture_at_a_new_batch_size_does_not_feed_the_render_estimate():
    clock = Clock(speed=20)
    audio = np.zeros(SAMPLES_PER_FRAME * 55, np.float32)  # batches of 8, then a first batch of 7
    engine = Engine(ColdSizesRenderer(clock), WindowMotion(1),
                    EngineSettings(max_batch=8, motion=MotionSettings(window=1)), clock=clock)
    engine.set_portrait(PORTRAIT)
    engine.start(FileSource(audio, realtime=False, clock=clock))
    assert engine.wait(60)
    stats = engine.stats()
    engine.close()
    assert stats.frames_rendered == 55 and engine.renderer.sizes == {7, 8}
    # steady cost: 1 ms a frame; a 2 s capture averaged in would read tens of ms for many batches after it
    assert stats.stage_ms["render"] < 20, stats.stage_ms


# ---------------------------------------------------------------- device frame buffers: one per renderer
def test_device_frame_buffers_are_one_per_renderer_not_per_portrait_and_batch(astronaut):
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.render import Renderer

    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))
    portraits = [renderer.prepare(np.ascontiguousarray(np.roll(astronaut, 8 * k, axis=1))) for k in range(3)]
    buffers = set()
    for p in portraits:
        for b in (8, 1, 2, 3, 4, 5, 6, 7):
            buf = renderer.frame_buffer(p, b)
            assert buf.shape == (b, *p.canvas.shape)
            y0, y1, x0, x1 = p.roi
            outside = buf.clone()
            outside[:, y0:y1, x0:x1] = p.canvas[y0:y1, x0:x1]
            assert torch.equal(outside, p.canvas.expand(b, -1, -1, -1)), "the buffer must hold this portrait"
            buffers.add(buf.untyped_storage().data_ptr())
    assert len(buffers) == 1, f"{len(buffers)} device buffers for 3 portraits x 8 batch sizes"



def test_warm_up_renders_every_batch_size_once_only_for_capturing_backends(astronaut, monkeypatch):
    """CUDA graphs / torch.compile capture per batch size: Engine.start has the renderer do it before the stream
    (Renderer.warm_up), so no capture lands mid-stream; eager backends skip it (no CPU time wasted)."""
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.render import Renderer

    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))
    portrait = renderer.prepare(astronaut)
    sizes = []
    real_render = renderer.render
    monkeypatch.setattr(renderer, "render", lambda p, rows, out=None: sizes.append(len(rows)) or real_render(p, rows))
    renderer.warm_up(portrait, 3)
    assert sizes == []
    monkeypatch.setattr(renderer.backend, "captures_per_batch", True)
    renderer.warm_up(portrait, 3)
    assert sizes == [1, 2, 3]
    engine = Engine(renderer, WindowMotion(1), EngineSettings(max_batch=2, motion=MotionSettings(window=1)))
    engine.set_portrait(astronaut)
    engine.start(FileSource(np.zeros(SAMPLES_PER_FRAME, np.float32), realtime=False))
    assert engine.wait(60)
    engine.close()
    assert sizes[3:5] == [1, 2], sizes  # the engine warmed both batch sizes up before its first frame


# ---------------------------------------------------------------- every implementation meets its interface
def test_renderers_sources_and_sinks_implement_their_protocols(tmp_path, astronaut):
    """What the engine calls exists on every implementation (runtime-checkable Protocols), so nothing in
    core or app needs to probe for it (tests/test_structure.py checks that nothing does)."""
    from core.device import pick_device
    from core.engine.contracts import AudioSource, FrameRenderer, Portrait, Sink
    from core.engine.sinks import VideoFileSink
    from core.lite.renderer import LiteRenderer
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.motion.generator import DiTMotionSource
    from core.motion.joyvasa import JoyVASAMotionSource
    from core.motion.retarget_source import RetargetMotionSource
    from core.motion.source import MotionSource
    from core.offline import MotionRecorder
    from core.render import Renderer

    full = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))
    for renderer in (full, LiteRenderer(full)):
        assert isinstance(renderer, FrameRenderer), type(renderer).__name__
    assert isinstance(full.prepare(astronaut), Portrait)
    for source in (FileSource(np.zeros(640, np.float32)), GeneratorSource(), MicrophoneSource()):
        assert isinstance(source, AudioSource), type(source).__name__
    video = VideoFileSink(tmp_path / "x.mp4", fps=25)
    for sink in (CallbackSink(lambda frame, info: None), video):
        assert isinstance(sink, Sink), type(sink).__name__
    video.abort()
    for motion in (RetargetMotionSource(), MotionRecorder(RetargetMotionSource()),
                   DiTMotionSource.create(synthetic="tiny")):
        assert isinstance(motion, MotionSource), type(motion).__name__
    hooks = ("use_models", "bind_portrait", "reset", "configure", "push_audio", "pull", "flush", "latency_ms")
    assert all(callable(getattr(JoyVASAMotionSource, name, None)) for name in hooks)  # its weights are a kit


def test_glibc_malloc_arenas_are_capped_for_live_sessions():
    """Each start runs new threads; uncapped, glibc gave each an arena that kept its freed frames (the soak grew
    by tens of MB). core.process caps them where it can (Linux glibc, MALLOC_ARENA_MAX not set by the user)."""
    import os
    import subprocess
    import sys

    code = "from core.process import limit_malloc_arenas; print(limit_malloc_arenas(), limit_malloc_arenas())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.split() == (["True", "True"] if sys.platform.startswith("linux") else ["False", "False"]), out
    env["MALLOC_ARENA_MAX"] = "4"  # the user's own choice wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ["False", "False"], out
