"""The latency budget and the engine's lifecycle with timed stand-in models (tests/engine_fakes.py).

A minute of stream runs on a clock sped up 5x, so "latency never grows with running time" is checked over
60 s of audio in about 12 s of wall time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.engine import CallbackSink, Clock, Engine, EngineBusy, EngineSettings, GeneratorSource
from core.motion.source import MotionSettings
from tests.engine_fakes import FakeRenderer, WindowMotion
from tests.helpers import wait_until


class Recorder:
    def __init__(self) -> None:
        self.infos = []

    def __call__(self, frame, info) -> None:
        self.infos.append(info)


def make(renderer, source_model, clock=None, **settings):
    engine = Engine(renderer, source_model, EngineSettings(**settings), clock=clock)
    engine.set_portrait(np.zeros((8, 8, 3), np.uint8))
    rec = Recorder()
    engine.add_sink(CallbackSink(rec))
    errors: list = []
    engine.on_error = errors.append
    return engine, rec, errors


def run_for(engine, clock, stream_s: float, source):
    """Run for `stream_s` of clock time; returns the stats taken just before stopping."""
    engine.start(source)
    deadline = time.monotonic() + stream_s / clock.speed
    while time.monotonic() < deadline and engine.running:
        time.sleep(0.05)
    stats = engine.stats()
    engine.stop()
    return stats


def test_slow_renderer_for_60s_stays_within_budget_and_does_not_grow():
    """Renders 10 fps (4 per batch of 8 costs 0.8 s) for 25 fps of audio: the engine skips, never queues."""
    clock = Clock(speed=5)
    renderer = FakeRenderer(per_frame=0.1, clock=clock)
    budget, batch = 0.5, 8
    engine, rec, errors = make(renderer, WindowMotion(1), clock, latency_budget_ms=budget * 1000, max_batch=batch,
                               motion=MotionSettings(window=1))
    stats = run_for(engine, clock, 60.0, GeneratorSource(clock=clock))
    assert not errors
    new = [i for i in rec.infos if not i.repeated]
    lat = np.array([i.emit_time - i.capture_time for i in new])
    t = np.array([i.emit_time for i in new]) - new[0].emit_time
    assert t[-1] > 50, "the run did not cover most of a minute of stream"
    one_batch = batch * renderer.per_frame
    assert lat.max() <= budget + one_batch + 0.1, lat.max()
    first, second = lat[t < t[-1] / 2], lat[t >= t[-1] / 2]
    assert np.median(second) <= np.median(first) + 0.05, (np.median(first), np.median(second))
    assert stats.drops > 0 and stats.repeats > 0 and stats.drops_before_render > 0
    assert 0 < stats.render_fps < 15 and stats.output_fps > 20  # honest: renders ~10, emits 25 (repeats)
    assert not stats.keeping_up and "cannot keep up" in stats.state and "of 25 fps" in stats.state
    assert stats.latency_ms_p95 <= (budget + one_batch + 0.1) * 1000


def test_windowed_source_at_real_time_has_no_drops_or_repeats_in_steady_state():
    """25 frames released at once (a DiT / JoyVASA window): the queue holds a window plus a batch and the
    pacer's start cushion absorbs the release jitter."""
    engine, rec, errors = make(FakeRenderer(per_frame=0.002), WindowMotion(25), motion=MotionSettings(window=25))
    run_for(engine, Clock(), 6.5, GeneratorSource())
    assert not errors
    t0 = rec.infos[0].emit_time
    steady = [i for i in rec.infos if 1.5 <= i.emit_time - t0 <= 5.0]
    assert len(steady) >= 80
    assert not any(i.repeated for i in steady), "repeats in steady state"
    idx = [i.index for i in steady]
    assert idx == list(range(idx[0], idx[0] + len(idx))), "frames skipped in steady state"
    stats = engine.stats()
    assert stats.latency_budget_ms >= 960  # raised to the window's look-ahead plus headroom
    assert stats.drops_after_render == 0


def test_stop_start_20_times_never_leaves_two_workers():
    """Each stop gives up waiting after 50 ms while a 0.15 s render is in progress: start must wait for it."""
    renderer = FakeRenderer(per_batch=0.15)
    engine, rec, errors = make(renderer, WindowMotion(1), motion=MotionSettings(window=1))
    peak = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak.append(sum(t.name == "headcast-worker" and t.is_alive() for t in threading.enumerate()))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(20):
            engine.start(GeneratorSource())
            time.sleep(0.1)
            engine.stop(timeout=0.05)
    finally:
        engine.close()
        done.set()
        watcher.join()
    assert max(peak) == 1 and renderer.max_active == 1 and not errors
    assert engine.alive_workers() == 0


def test_start_refuses_while_a_stopped_worker_still_renders():
    renderer = FakeRenderer(per_batch=1.0)
    engine, rec, errors = make(renderer, WindowMotion(1), motion=MotionSettings(window=1))
    engine.start(GeneratorSource())
    deadline = time.monotonic() + 5
    while renderer.active == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.stop(timeout=0.01)
    assert engine.alive_workers() == 1
    engine.restart_wait_s = 0.05
    with pytest.raises(EngineBusy, match="still finishing a render"):
        engine.start(GeneratorSource())
    engine.close()
    assert engine.alive_workers() == 0


def test_settings_are_applied_on_the_worker_between_batches():
    motion = WindowMotion(1)
    engine, rec, errors = make(FakeRenderer(per_frame=0.002), motion, motion=MotionSettings(window=1))
    engine.start(GeneratorSource())
    time.sleep(0.3)
    engine.configure(EngineSettings(motion=MotionSettings(window=5), latency_budget_ms=2000))
    wait_until(lambda: motion.window == 5, what="the settings applied")
    engine.stop()
    assert motion.configured_on[-1] == "headcast-worker" and motion.window == 5
    assert engine.stats().latency_budget_ms == 2000


def test_output_fps_right_after_the_first_frame_is_the_stream_rate():
    """Half a second into the stream the sinks have had ~12 frames: that is 25 fps, not "12 fps over the last
    second" (which read as a stream at half speed beside the render rate, right after every start)."""
    renderer = FakeRenderer(per_frame=0.002)
    engine, rec, errors = make(renderer, WindowMotion(1), motion=MotionSettings(window=1))
    engine.start(GeneratorSource())
    try:
        deadline = time.monotonic() + 30
        while len(rec.infos) < 8:
            assert time.monotonic() < deadline and not errors, "no frames"
            time.sleep(0.005)
        stats = engine.stats()
        since_first = engine.clock.now() - rec.infos[0].emit_time
    finally:
        engine.stop()
    assert since_first < 0.9  # still inside the first second of output: the case the old figure got wrong
    assert 18 <= stats.output_fps <= 32, (stats.output_fps, len(rec.infos), since_first)
