"""Webcam smoothing of live face rows (core/drive/smooth.py): a still face held still, a turning head not left
behind, time from the capture times (30 and 60 fps alike), a new driving window taken as it is."""

from __future__ import annotations

import numpy as np
import pytest

from core import layout
from core.bench.drive_smooth import head_turns, measure
from core.drive.smooth import OneEuro, Smoothing

YAW = layout.POSE.start


def _noisy(fps: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, truth = head_turns(fps, 20.0, 0.4)
    return t, truth, truth + np.random.default_rng(seed).normal(0.0, 0.3, len(t))


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_a_still_face_is_held_still_and_a_turn_is_not_left_behind(fps):
    t, truth, noisy = _noisy(fps)
    raw_jitter, _ = measure(None, t, truth, noisy, 0.4)
    jitter, lag_ms = measure(OneEuro(Smoothing()), t, truth, noisy, 0.4)
    assert jitter < 0.25 * raw_jitter, (jitter, raw_jitter)
    assert lag_ms < 20, lag_ms  # half a frame at 25 fps output
    plain_jitter, plain_lag = measure(OneEuro(Smoothing(beta=0.0)), t, truth, noisy, 0.4)
    assert plain_lag > 2 * lag_ms  # without the speed term it is a plain low-pass: the turn trails behind


def test_the_filter_follows_capture_times_not_calls():
    """The same movement seen by a 30 and a 60 fps camera settles alike: the cut-off is in Hz, not in frames."""
    settled = []
    for fps in (30.0, 60.0):
        f = OneEuro(Smoothing())
        row = np.zeros(layout.MOTION_DIM, np.float32)
        f(row, 0.0)
        row[YAW] = 10.0
        t = np.arange(1, int(fps * 0.5) + 1) / fps
        out = [float(f(row, ti)[YAW]) for ti in t]
        settled.append(out[-1])
    assert abs(settled[0] - settled[1]) < 0.5 and all(s > 9.0 for s in settled), settled


def test_reset_takes_the_next_row_as_it_is_and_nothing_is_allocated():
    f = OneEuro(Smoothing())
    row = np.zeros(layout.MOTION_DIM, np.float32)
    out = f(row, 0.0)
    row[YAW] = 5.0
    assert f(row, 0.04) is out and 0.0 < out[YAW] < 5.0  # filtered, into the same buffer
    f.reset()
    np.testing.assert_array_equal(f(row, 0.08), row)
    with pytest.raises(ValueError):
        Smoothing(min_cutoff_hz=0.0)
