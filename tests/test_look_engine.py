"""Changing the look while the engine runs (tiny stand-in networks, retarget motion): no extra renders, no frame
dropped or repeated beyond a run without changes, no latency spike, and the look's per-batch cost is small next
to rendering. Verdicts rest on counts and on a renderer of fixed cost, not on this machine's speed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from core import layout
from core.device import pick_device
from core.engine import CallbackSink, Engine, EngineSettings, FileSource, GeneratorSource
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.look import Look
from core.look_live import EASE_FRAMES, LookLayer
from core.motion import make_motion_source
from core.render import Renderer
from tests.engine_fakes import FakeRenderer

LOOKS = [Look(smile=1.0), Look(yaw=15.0, gaze_x=-20.0), Look(eye_ratio=0.6, lip_ratio=0.3), Look(),
         Look(head_motion=0.2, mov_z=1.1)]


class CountingRenderer(Renderer):
    """The real renderer, counting rows and calls."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows = self.calls = 0

    def render(self, portrait, motion, out=None):
        self.rows += len(motion)
        self.calls += 1
        return super().render(portrait, motion, out)


@pytest.fixture(scope="module")
def models():
    return build_liveportrait(LivePortraitConfig.tiny(), seed=0)


def run(models, astronaut, audio, realtime: bool, change_every: int | None):
    renderer = CountingRenderer(models, pick_device("cpu"))
    engine = Engine(renderer, make_motion_source("retarget"), EngineSettings(max_batch=4, latency_budget_ms=60_000))
    engine.set_portrait(astronaut)
    infos, faces, lock = [], [], threading.Lock()
    y0, y1, x0, x1 = renderer.prepare(astronaut).roi

    def sink(frame, info):
        with lock:
            infos.append(info)
            if not info.repeated:
                faces.append(frame[y0:y1, x0:x1].astype(np.int16))
                n = len(faces)
                if change_every and n % change_every == 0:  # a user dragging sliders, from another thread
                    renderer.look.set(LOOKS[(n // change_every) % len(LOOKS)])

    engine.add_sink(CallbackSink(sink))
    errors = []
    engine.on_error = errors.append
    engine.start(FileSource(audio, realtime=realtime))
    assert engine.wait(120)
    engine.stop()
    assert not errors
    return renderer, engine.stats(), infos, np.array(faces)


def test_look_changes_cost_no_render_and_no_frame(models, astronaut, speech_16k):
    audio = speech_16k[: 2 * 16000]
    base_r, _, base_infos, base_faces = run(models, astronaut, audio, realtime=False, change_every=None)
    r, _, infos, faces = run(models, astronaut, audio, realtime=False, change_every=5)
    assert [i.index for i in infos] == [i.index for i in base_infos] == list(range(50))
    assert not any(i.repeated for i in infos)
    assert (r.rows, r.calls) == (base_r.rows, base_r.calls)  # a look change renders nothing extra
    assert np.abs(faces - base_faces).mean(axis=(1, 2, 3)).max() > 0.5  # and it did change the frames


class LookingFakeRenderer(FakeRenderer):
    """The engine-fakes renderer (a fixed cost on the engine's clock: the verdict does not depend on this
    machine's speed) that also runs the real look layer on every batch, as the real renderer does."""

    def __init__(self, models, portrait, per_frame: float) -> None:
        super().__init__(per_frame=per_frame)
        self.look = LookLayer(models.eye, models.lip)
        self.portrait = portrait
        self.applied: list[float] = []  # smile's expression column per rendered row, as the renderer got it

    def render(self, portrait, motion, out=None):
        plain = torch.from_numpy(np.asarray(motion))
        rows, _ = self.look.apply(self.portrait, plain)
        self.applied.extend(((rows - plain)[:, 3 * 14 + 1] / -0.02).tolist())  # the look's part only
        return super().render(portrait, motion, out)


def live_run(models, astronaut, change_every: int | None):
    portrait = Renderer(models, pick_device("cpu")).prepare(astronaut)
    renderer = LookingFakeRenderer(models, portrait, per_frame=0.01)  # 4x faster than real time
    engine = Engine(renderer, make_motion_source("retarget"), EngineSettings(max_batch=4, latency_budget_ms=2_000))
    engine.set_portrait(astronaut)
    infos = []

    def sink(frame, info):
        infos.append(info)
        n = sum(not i.repeated for i in infos)
        if change_every and not info.repeated and n % change_every == 0:
            renderer.look.set(Look(smile=1.0) if (n // change_every) % 2 else Look(smile=0.0, yaw=10.0))

    engine.add_sink(CallbackSink(sink))
    errors = []
    engine.on_error = errors.append
    engine.start(GeneratorSource())
    time.sleep(3.0)
    engine.stop()
    assert not errors
    return engine.stats(), infos, renderer.applied


def test_live_look_changes_drop_repeat_and_delay_nothing(models, astronaut):
    """Real time, a renderer 4x faster than needed: with a look change every 3 frames, every stream frame
    still arrives once and in order, and drops, repeats and the worst latency match a run without changes."""
    base, base_infos, _ = live_run(models, astronaut, change_every=None)
    stats, infos, applied = live_run(models, astronaut, change_every=3)
    for st, inf in ((base, base_infos), (stats, infos)):
        new = [i.index for i in inf if not i.repeated]
        assert new == list(range(new[0], new[0] + len(new))) and len(new) >= 50
        assert st.drops == 0
    assert stats.repeats <= base.repeats + 2, (stats.repeats, base.repeats)
    assert stats.latency_ms_max <= base.latency_ms_max + 100, (stats.latency_ms_max, base.latency_ms_max)
    steps = np.abs(np.diff(applied))
    assert 0 < steps.max() <= 1.5 / EASE_FRAMES + 1e-5  # the changes happened, eased: no jump between frames


def test_the_looks_cost_is_small_next_to_a_render(models, astronaut):
    """Per batch of 4: LookLayer.apply (during a transition, with both retargeting deltas: its dearest case)
    against the full render of the same rows, timed in the same process (a ratio, not a speed)."""
    renderer = Renderer(models, pick_device("cpu"))
    portrait = renderer.prepare(astronaut)
    rows = torch.zeros(4, layout.MOTION_DIM)
    renderer.render(portrait, rows)  # warm-up
    t0 = time.perf_counter()
    for _ in range(3):
        renderer.render(portrait, rows)
    render_s = (time.perf_counter() - t0) / 3
    layer = renderer.look
    t0 = time.perf_counter()
    for i in range(30):
        layer.set(LOOKS[i % 3])
        layer.apply(portrait, rows)
    look_s = (time.perf_counter() - t0) / 30
    renderer.look.set(Look(), ease=False)
    assert look_s < 0.2 * render_s, (look_s, render_s)
