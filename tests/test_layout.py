"""The motion-row contract (core/layout.py): relative rows, the optional absolute-lip weight, gains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import layout


def rows_and_source(n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.normal(0, 0.05, (1, 21, 3)).astype(np.float32)
    rows = rng.normal(0, 0.05, (n, layout.MOTION_DIM + 1)).astype(np.float32)
    rows[:, layout.LIP_ABSOLUTE] = np.linspace(0, 1, n)
    return rows, source


def test_seventy_column_rows_are_plain_deltas():
    rows, source = rows_and_source()
    got = layout.driving_expression(source, rows[:, : layout.MOTION_DIM])
    assert np.array_equal(got, source + rows[:, layout.EXP].reshape(-1, 21, 3))


@pytest.mark.parametrize("as_torch", [False, True])
def test_absolute_lip_weight_replaces_only_the_lips(as_torch):
    rows, source = rows_and_source()
    got = layout.driving_expression(*((torch.from_numpy(source), torch.from_numpy(rows)) if as_torch
                                       else (source, rows)))
    got = np.asarray(got)
    m = rows[:, layout.EXP].reshape(-1, 21, 3)
    w = rows[:, layout.LIP_ABSOLUTE, None]
    for k in range(21):
        expected = (1 - w) * source[:, k] + m[:, k] if k in layout.LIP_KEYPOINTS else source[:, k] + m[:, k]
        assert np.allclose(got[:, k], expected, atol=1e-7), k
    # w = 1: the lips are exactly the row's own (absolute) values, whatever the portrait's
    assert np.allclose(got[-1, list(layout.LIP_KEYPOINTS)], m[-1, list(layout.LIP_KEYPOINTS)], atol=1e-7)
    assert len(layout.LIP_KEYPOINTS) == 6 and not set(layout.LIP_KEYPOINTS) & set(layout.EYE_KEYPOINTS)


def test_expression_gain_blends_portrait_and_generated_lips():
    rows, source = rows_and_source()
    rows[:, layout.LIP_ABSOLUTE] = 1.0
    generated = layout.driving_expression(source, rows)
    for g in (0.0, 0.5, 1.0):
        scaled = layout.apply_gains(rows.copy(), expression_gain=g)
        assert scaled[0, layout.LIP_ABSOLUTE] == g
        got = layout.driving_expression(source, scaled)
        lips = list(layout.LIP_KEYPOINTS)
        assert np.allclose(got[:, lips], source[:, lips] + g * (generated[:, lips] - source[:, lips]), atol=1e-6)
    delta = layout.expression_delta(source, layout.apply_gains(rows.copy(), expression_gain=0.0))
    assert np.abs(delta).max() < 1e-7  # gain 0: the portrait's own face, lips included


def test_renderer_honours_the_absolute_lip_weight(renderer, portrait):
    """The same face written as deltas (70 columns) or with absolute lips (71) gives the same keypoints."""
    rng = np.random.default_rng(1)
    delta = rng.normal(0, 0.03, (2, layout.MOTION_DIM)).astype(np.float32)
    wide = np.zeros((2, layout.MOTION_DIM + 1), np.float32)
    wide[:, : layout.MOTION_DIM] = delta
    wide[:, layout.LIP_ABSOLUTE] = 1.0
    src = portrait.exp[0].numpy()
    for k in layout.LIP_KEYPOINTS:
        wide[:, 3 * k : 3 * k + 3] += src[k]
    a = renderer.driving_keypoints(portrait, torch.from_numpy(delta))
    b = renderer.driving_keypoints(portrait, torch.from_numpy(wide))
    assert torch.allclose(a, b, atol=1e-6)
    wide[:, layout.LIP_ABSOLUTE] = 0.0  # the same numbers read as deltas: a different mouth
    assert not torch.allclose(a, renderer.driving_keypoints(portrait, torch.from_numpy(wide)), atol=1e-4)
    assert renderer.render(portrait, wide[:1]).shape[0] == 1


@pytest.fixture(scope="module")
def renderer():
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.render import Renderer

    return Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"), stitching=False)


@pytest.fixture(scope="module")
def portrait(renderer, astronaut):
    return renderer.prepare(astronaut, "astronaut")


def test_as_deltas_folds_the_absolute_lips_for_delta_only_renderers():
    rows, source = rows_and_source()
    plain = layout.as_deltas(source[0].astype(np.float64), rows)
    assert plain.shape == (len(rows), layout.MOTION_DIM) and plain.dtype == np.float32
    assert np.allclose(layout.driving_expression(source, plain), layout.driving_expression(source, rows), atol=1e-6)
    assert np.array_equal(plain[:, 63:], rows[:, 63:70])
    narrow = rows[:, : layout.MOTION_DIM]
    assert layout.as_deltas(source, narrow) is narrow  # 70-column rows pass through untouched
