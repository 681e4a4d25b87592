"""The look on top of motion: the renderer's keypoints agree with the editor, changes ease without jumps, and a
neutral look costs nothing (tiny stand-in networks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import layout
from core.device import pick_device
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.look import Look, SourceRatios, edit_keypoints
from core.look_live import EASE_FRAMES, LookLayer, look_vector
from core.render import Renderer


@pytest.fixture(scope="module")
def renderer():
    return Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))


@pytest.fixture(scope="module")
def portrait(renderer, astronaut):
    return renderer.prepare(astronaut, "astronaut")


@pytest.fixture(autouse=True)
def _neutral_again(renderer):
    yield
    renderer.look.set(Look(), ease=False)


class _NoTz:
    """The portrait with tz = 0: the editor then means what the renderer means (core/look.py docstring)."""

    def __init__(self, p):
        self.kp, self.exp, self.scale, self.angles, self.x_s = p.kp, p.exp, p.scale, p.angles, p.x_s
        self.t = p.t.clone()
        self.t[:, 2] = 0


LOOKS = [Look(smile=1.0), Look(gaze_x=-20.0, gaze_y=30.0, eyebrow=-12.0), Look(yaw=15.0, pitch=-8.0, mov_z=1.1),
         Look(eye_ratio=0.6, lip_ratio=0.4, mov_x=0.1, wink=20.0)]


@pytest.mark.parametrize("look", LOOKS, ids=lambda look: look.describe())
def test_renderer_keypoints_are_the_editors_on_a_still_motion(renderer, portrait, look):
    renderer.look.set(look, ease=False)
    got = renderer.driving_keypoints(portrait, torch.zeros(1, layout.MOTION_DIM))
    m = renderer.models
    want = edit_keypoints(_NoTz(portrait), look, m.stitching, m.eye, m.lip, SourceRatios.of(portrait))
    assert torch.allclose(got, want, atol=2e-6), (got - want).abs().max()


def test_look_adds_to_motion_and_gains_scale_it(renderer, portrait):
    rows = torch.zeros(2, layout.MOTION_DIM)
    rows[:, layout.YAW] = 10.0
    rows[:, 5] = 0.01  # keypoint 1, y
    renderer.look.set(Look(yaw=5.0, head_motion=0.5, expression_motion=2.0), ease=False)
    look_rows, delta = renderer.look.apply(portrait, rows)
    assert delta is None
    assert torch.allclose(look_rows[:, layout.YAW], torch.full((2,), 10.0))  # 10 * 0.5 + 5
    assert torch.allclose(look_rows[:, 5], torch.full((2,), 0.02))
    assert rows[0, layout.YAW] == 10.0  # the caller's rows are not modified


def test_neutral_look_returns_the_rows_themselves(renderer, portrait):
    rows = torch.zeros(3, layout.MOTION_DIM)
    out, delta = renderer.look.apply(portrait, rows)
    assert out is rows and delta is None


def _eased_smile(layer: LookLayer, portrait, batches: list[int]) -> np.ndarray:
    values = []
    for b in batches:
        rows, _ = layer.apply(portrait, torch.zeros(b, layout.MOTION_DIM))
        values.extend(rows[:, 3 * 14 + 1].tolist())  # smile moves keypoint 14's y by -0.02 a unit
    return np.array(values) / -0.02


def test_a_change_eases_over_a_few_frames_whatever_the_batching(portrait):
    for batches in ([1] * 12, [8, 4], [3, 5, 4], [12]):
        layer = LookLayer()
        layer.apply(portrait, torch.zeros(1, layout.MOTION_DIM))
        layer.set(Look(smile=1.0))
        smile = _eased_smile(layer, portrait, batches)
        assert np.all(np.diff(smile) >= -1e-6), smile  # monotone: no back and forth
        assert np.max(np.diff(np.concatenate(([0.0], smile)))) <= 1.5 / EASE_FRAMES + 1e-6  # smoothstep's slope
        assert smile[EASE_FRAMES - 1:] == pytest.approx(1.0, abs=1e-6)
        assert 0 < smile[0] < 0.2


def test_a_change_during_a_transition_continues_from_where_it_is(portrait):
    layer = LookLayer()
    layer.apply(portrait, torch.zeros(1, layout.MOTION_DIM))
    layer.set(Look(smile=1.0))
    first = _eased_smile(layer, portrait, [4])
    layer.set(Look(smile=0.0))  # dragged back half way through
    second = _eased_smile(layer, portrait, [1] * EASE_FRAMES)
    steps = np.abs(np.diff(np.concatenate((first, second))))
    assert steps.max() <= 1.5 / EASE_FRAMES + 1e-6, steps
    assert second[-1] == pytest.approx(0.0, abs=1e-6)


def test_ratio_changes_ease_too(renderer, portrait):
    layer = LookLayer(renderer.models.eye, renderer.models.lip)
    layer.apply(portrait, torch.zeros(1, layout.MOTION_DIM))
    layer.set(Look(eye_ratio=0.7))
    deltas = [layer.apply(portrait, torch.zeros(1, layout.MOTION_DIM))[1] for _ in range(EASE_FRAMES + 2)]
    final = deltas[-1].reshape(-1)
    assert final.abs().max() > 0
    fractions = [float(d.reshape(-1) @ final / (final @ final)) for d in deltas]
    assert fractions[0] < 0.2 and fractions[-1] == pytest.approx(1.0, abs=1e-5)
    assert all(b >= a - 1e-6 for a, b in zip(fractions, fractions[1:]))


def test_another_portrait_gets_the_look_at_once(portrait):
    layer = LookLayer()
    layer.set(Look(smile=1.0))
    smile = _eased_smile(layer, portrait, [1])  # the first portrait seen: no transition from nothing
    assert smile[0] == pytest.approx(1.0)


def test_gaze_lock_turns_the_eyes_against_the_head_and_keeps_blinks(portrait):
    layer = LookLayer()
    layer.set(Look(gaze_lock=1.0), ease=False)
    rows = torch.zeros(2, layout.MOTION_DIM)
    rows[:, layout.YAW] = torch.tensor([0.0, 10.0])
    rows[:, 3 * 11] = 0.004  # the motion's own eyeball wander (x)
    rows[:, 3 * 11 + 1] = -0.003  # lids / eyeball y from a blink
    out, _ = layer.apply(portrait, rows)
    assert out[0, 3 * 11] == pytest.approx(0.0, abs=1e-7)  # wander gone, head still: eyes on the camera
    assert out[1, 3 * 11] == pytest.approx(-10.0 * 0.001, abs=1e-7)  # turned back against +10 degrees of yaw
    assert out[1, 3 * 15] == pytest.approx(-10.0 * 0.0007, abs=1e-7)
    assert torch.allclose(out[:, 3 * 11 + 1], rows[:, 3 * 11 + 1])  # the blink stays


def test_look_vector_of_neutral_is_identity_on_rows(portrait):
    from core.look_live import apply_look_rows

    rows = torch.randn(4, layout.MOTION_DIM + 1) * 0.01
    out = apply_look_rows(rows, torch.from_numpy(look_vector(Look()))[None])
    assert torch.allclose(out, rows, atol=1e-7)


def test_gains_on_joyvasa_rows_are_layouts_gains(portrait):
    """71-column rows (JoyVASA's absolute lips): the look's motion gains are exactly layout.apply_gains."""
    rows = np.random.default_rng(1).normal(0, 0.01, (5, layout.MOTION_DIM + 1)).astype(np.float32)
    rows[:, layout.LIP_ABSOLUTE] = 1.0
    layer = LookLayer()
    layer.set(Look(head_motion=0.4, expression_motion=1.7), ease=False)
    got, _ = layer.apply(portrait, torch.from_numpy(rows.copy()))
    want = layout.apply_gains(rows.copy(), expression_gain=1.7, head_gain=0.4)
    assert np.allclose(got.numpy(), want, atol=1e-7)
