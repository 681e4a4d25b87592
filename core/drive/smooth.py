"""Smoothing of live face rows: a webcam's frame-to-frame jitter without the lag of a plain low-pass (issue 25).

Why not the official smoother: LivePortrait smooths a *source video's* keypoints with a Kalman-style filter run
over the whole clip offline; a live call needs a causal filter, and one that does not make a turning head trail
behind. The one-euro filter (Casiez, Roussel and Vogel, CHI 2012) is the standard answer for live tracking: a
first-order low-pass whose cut-off rises with the signal's speed, so a still face is held still (cut-off
`min_cutoff_hz`) while a moving one passes nearly unfiltered (`beta` per unit of speed). Speeds are measured in
each column's own unit (`SPEED_UNITS`: degrees for the pose, a hundredth of the keypoint space for expression,
translation and scale), so one `beta` suits every column. Time steps come from the camera frames' capture times,
so a 30 or 60 fps camera is filtered alike. `python -m core bench drive-smooth` measures jitter against lag
for a few settings on a synthetic head movement (docs/benchmarks.md); the defaults come from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core import layout


@dataclass(frozen=True)
class Smoothing:
    min_cutoff_hz: float = 0.5  # cut-off for a still face: lower holds it stiller, and lags more when it starts
    beta: float = 0.2  # cut-off added per unit of speed (column units per second): higher lags less when moving
    d_cutoff_hz: float = 1.0  # low-pass on the speed estimate itself

    def __post_init__(self) -> None:
        if not (self.min_cutoff_hz > 0 and self.d_cutoff_hz > 0 and self.beta >= 0):
            raise ValueError(f"smoothing needs positive cut-offs and beta >= 0, got {self}")


def _speed_units() -> np.ndarray:
    units = np.full(layout.MOTION_DIM, 0.01, np.float32)  # expression, translation, scale: 1/100 of the space
    units[layout.POSE] = 1.0  # degrees
    return units


SPEED_UNITS = _speed_units()


def _alpha(cutoff_hz, dt: float):
    """Smoothing factor of a first-order low-pass at `cutoff_hz` for a step of `dt` seconds."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """The one-euro filter over motion rows, one column at a time; call per new face row with its capture time.
    Preallocated: a call allocates nothing but numpy's scalars."""

    def __init__(self, config: Smoothing, dim: int = layout.MOTION_DIM) -> None:
        self.config = config
        self.units = SPEED_UNITS[:dim]
        self.value = np.zeros(dim, np.float32)  # the filtered row (returned, reused)
        self._speed = np.zeros(dim, np.float32)  # filtered speed, column units per second
        self._raw = np.zeros(dim, np.float32)
        self._cutoff = np.zeros(dim, np.float32)
        self._t: float | None = None

    def reset(self) -> None:
        """The next row is taken as it is (a new driving window: its first face is the new rest pose)."""
        self._t = None

    def __call__(self, row: np.ndarray, t: float) -> np.ndarray:
        if self._t is None or t <= self._t:  # the first row, or a clock that did not move: nothing to filter
            self.value[:] = row
            self._speed[:] = 0.0
            self._t = t
            return self.value
        dt = t - self._t
        self._t = t
        c = self.config
        np.subtract(row, self.value, out=self._raw)
        self._raw /= dt  # speed of the raw row against the last filtered one
        self._raw -= self._speed
        self._raw *= _alpha(c.d_cutoff_hz, dt)
        self._speed += self._raw
        np.abs(self._speed, out=self._cutoff)
        self._cutoff /= self.units
        self._cutoff *= c.beta
        self._cutoff += c.min_cutoff_hz
        # per column: alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff)  ->  alpha = 1 / (1 + 1 / (2 pi cutoff dt))
        np.multiply(self._cutoff, 2.0 * math.pi * dt, out=self._cutoff)
        np.reciprocal(self._cutoff, out=self._cutoff)
        self._cutoff += 1.0
        np.reciprocal(self._cutoff, out=self._cutoff)
        np.subtract(row, self.value, out=self._raw)
        self._raw *= self._cutoff
        self.value += self._raw
        return self.value
