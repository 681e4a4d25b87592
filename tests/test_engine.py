"""The streaming engine end to end with tiny models: frame counts, pacing, latency, control mid-stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.device import pick_device
from core.engine import CallbackSink, Engine, EngineSettings, FileSource, GeneratorSource
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.motion import make_motion_source
from core.render import Renderer
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def renderer():
    return Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))


class Recorder:
    def __init__(self) -> None:
        self.infos, self.shapes = [], []
        self.lock = threading.Lock()

    def __call__(self, frame, info) -> None:
        with self.lock:
            self.infos.append(info)
            self.shapes.append(frame.shape)

    def new(self):
        return [i for i in self.infos if not i.repeated]


def make_engine(renderer, astronaut, **settings):
    engine = Engine(renderer, make_motion_source("retarget"), EngineSettings(**settings))
    engine.set_portrait(astronaut)
    rec = Recorder()
    engine.add_sink(CallbackSink(rec))
    errors = []
    engine.on_error = errors.append
    return engine, rec, errors


def test_realtime_speech_file(renderer, astronaut, speech_16k):
    audio = speech_16k[: 3 * 16000 + 123]  # 3.0077 s
    engine, rec, errors = make_engine(renderer, astronaut, latency_budget_ms=60_000)  # every frame, however slow
    engine.start(FileSource(audio, realtime=True))
    assert engine.wait(30)
    engine.stop()
    assert not errors
    frames = rec.new()
    stats = engine.stats()
    # every frame is shown, or dropped after a repeat to bring latency back to its floor, and counted
    assert abs(len(frames) + stats.catch_up_drops - 25 * len(audio) / 16000) <= 1
    index = [f.index for f in frames]
    assert index[0] == 0 and np.all(np.diff(index) >= 1)
    assert index[-1] - index[0] + 1 - len(index) == stats.catch_up_drops
    pts = np.array([i.pts for i in rec.infos])
    emit = np.array([i.emit_time for i in rec.infos])
    steps = np.diff(pts) / 0.04  # one tick apart (more only where a starved pacer skipped ticks)
    assert np.allclose(steps, np.round(steps)) and np.all(np.round(steps) >= 1) and np.all(np.diff(emit) > 0)
    assert abs(np.median(np.diff(emit)) - 0.04) < 0.005  # paced at 25 fps
    assert stats.latency_ms > 0 and stats.frames_emitted == len(frames) and stats.first_frame_ms > 0
    assert {"motion", "render", "sinks"} <= set(stats.stage_ms)


def test_file_as_fast_as_possible(renderer, astronaut):
    audio = np.random.default_rng(0).normal(0, 0.05, 2 * 16000 + 10).astype(np.float32)
    engine, rec, errors = make_engine(renderer, astronaut, max_batch=8)
    engine.start(FileSource(audio, realtime=False))
    assert engine.wait(30)
    assert [i.index for i in rec.infos] == list(range(51))  # ceil(32010 / 640)
    assert not any(i.repeated for i in rec.infos) and not errors


def test_stop_start_and_portrait_swap_mid_stream(renderer, astronaut):
    engine, rec, errors = make_engine(renderer, astronaut)
    engine.start(GeneratorSource())
    wait_until(lambda: len(rec.infos) > 5, what="frames before the swap")
    smaller = astronaut[::2, ::2].copy()
    engine.set_portrait(smaller)
    n_swap = len(rec.infos)
    wait_until(lambda: rec.shapes[-1] == (256, 256, 3) and len(rec.infos) > n_swap, what="frames of the new portrait")
    engine.stop()
    assert rec.shapes[0] == (512, 512, 3) and rec.shapes[-1] == (256, 256, 3)
    n = len(rec.infos)
    time.sleep(0.2)
    assert len(rec.infos) == n  # stopped means stopped
    engine.start(GeneratorSource())
    wait_until(lambda: len(rec.infos) > n, what="frames after the restart")
    engine.stop()
    assert not errors


class SlowRenderer:
    """Wraps a renderer and sleeps per batch: the pacer must repeat frames (underruns) at a steady rate."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.spec, self.models = inner.spec, inner.models

    def prepare(self, *a, **k):
        return self.inner.prepare(*a, **k)

    backend_name = "slow"

    def ready(self, *a, **k):
        return True

    def warm_up(self, portrait, max_batch):
        pass

    def render(self, *a, **k):
        time.sleep(self.delay)
        return self.inner.render(*a, **k)


def test_underruns_are_counted_and_filled(renderer, astronaut):
    engine, rec, _ = make_engine(SlowRenderer(renderer, 0.15), astronaut)
    engine.start(GeneratorSource())
    time.sleep(1.5)
    engine.stop()
    stats = engine.stats()
    assert stats.underruns > 0
    assert sum(i.repeated for i in rec.infos) == stats.underruns
    emit = np.diff([i.emit_time for i in rec.infos])
    assert abs(np.median(emit) - 0.04) < 0.01


class BurstSource(FileSource):
    """Claims to be real time but delivers all its audio at once: the frame queue must overrun."""

    def _run(self, deliver):
        deliver(self.samples, time.monotonic())
        self.finished.set()


def test_overruns_drop_the_oldest_frames(astronaut):
    """A fast renderer and a budget too large to matter: what overruns the frame queue is dropped, oldest
    first; the queue still holds a motion window plus a batch however small max_queue_s is."""
    from tests.engine_fakes import FakeRenderer

    engine, rec, _ = make_engine(FakeRenderer(), astronaut, max_queue_s=0.08, latency_budget_ms=60_000)
    engine.start(BurstSource(np.zeros(3 * 16000, np.float32), realtime=True))
    assert engine.wait(30)
    stats = engine.stats()
    assert stats.drops > 0 and stats.drops == stats.drops_after_render
    assert stats.frames_emitted + stats.drops == stats.frames_rendered == 75
    assert engine._run.pacer.max_queue >= 8 + 1  # a batch plus the source's window (1 frame + look-ahead)
    assert rec.new()[-1].index == 74  # the newest frames survive


class FailingRenderer(SlowRenderer):
    def render(self, *a, **k):
        raise RuntimeError("CUDA error: device lost (simulated)")


def test_errors_reach_on_error_and_the_engine_recovers(renderer, astronaut):
    engine, rec, errors = make_engine(FailingRenderer(renderer, 0), astronaut)
    engine.start(GeneratorSource())
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    assert errors and "device lost" in str(errors[0])
    engine.stop()
    engine.renderer = renderer  # "fixed": start again without building a new engine
    engine.start(GeneratorSource())
    time.sleep(0.6)
    engine.stop()
    assert rec.new()


def test_muted_avatar_goes_idle(renderer, astronaut):
    engine, rec, _ = make_engine(renderer, astronaut)
    engine.set_muted(True)
    lips = []
    original = engine.motion.pull

    def spy():
        rows = original()
        lips.extend(engine.motion.last_aux["lip_ratio"])
        return rows

    engine.motion.pull = spy
    engine.start(GeneratorSource())
    wait_until(lambda: len(lips) > 0, what="motion rows while muted")
    engine.stop()
    assert lips and max(lips) == 0 and engine.stats().muted


def test_a_failing_source_is_reported(renderer, astronaut):
    def broken(n, t0):
        if t0 > 0.3:
            raise OSError("audio device vanished (simulated)")
        return np.zeros(n, np.float32)

    engine, rec, errors = make_engine(renderer, astronaut)
    engine.start(GeneratorSource(broken))
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.stop()
    assert errors and "vanished" in str(errors[0])
