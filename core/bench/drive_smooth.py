"""Face-row smoothing for a webcam: jitter left on a still face against the lag it adds to a turning head, for no
smoothing, plain exponential averages and a few one-euro settings (core/drive/smooth.py), on a synthetic head
movement with camera noise. Synthetic on purpose: it needs neither a camera nor real weights, and the trade-off
it shows is the filter's own; the noise level is a parameter (a webcam's pose jitter with real weights was not
measured here)."""

from __future__ import annotations

import argparse

import numpy as np

from core import layout
from core.drive.smooth import OneEuro, Smoothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera-fps", type=float, default=30.0)
    parser.add_argument("--pose-noise", type=float, default=0.3, metavar="DEG",
                        help="standard deviation of the camera's pose jitter, degrees (default 0.3)")
    parser.add_argument("--turn", type=float, default=20.0, metavar="DEG", help="the head turn, degrees")
    parser.add_argument("--turn-s", type=float, default=0.4, help="how long the turn takes, seconds")
    parser.add_argument("--seed", type=int, default=0)


def head_turns(fps: float, turn: float, turn_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, yaw in degrees): still 2 s, a smooth turn, still 2 s, the turn back, still 2 s."""
    t = np.arange(int(round(7.0 * fps)) + 1) / fps
    def ramp(t0: float) -> np.ndarray:
        x = np.clip((t - t0) / turn_s, 0.0, 1.0)
        return turn * (0.5 - 0.5 * np.cos(np.pi * x))
    return t, ramp(2.0) - ramp(4.0 + turn_s)


def measure(smoother, t: np.ndarray, truth: np.ndarray, noisy: np.ndarray, turn_s: float) -> tuple[float, float]:
    """-> (jitter: RMS frame-to-frame change on the still stretches, degrees; lag: ms the output reaches half the
    first turn after the truth does)."""
    yaw = layout.POSE.start
    out = np.empty(len(t))
    row = np.zeros(layout.MOTION_DIM, np.float32)
    for i, (ti, v) in enumerate(zip(t, noisy)):
        row[yaw] = v
        out[i] = smoother(row, float(ti))[yaw] if smoother is not None else v
    still = (t > 1.0) & (t < 2.0) | (t > 2.5 + turn_s) & (t < 4.0)
    steps = np.diff(out)[still[1:] & still[:-1]]
    half = truth.max() / 2
    def crossing(series: np.ndarray) -> float:
        i = int(np.argmax((series >= half) & (t > 1.5)))
        return float(np.interp(half, series[i - 1 : i + 1], t[i - 1 : i + 1]))
    return float(np.sqrt(np.mean(steps**2))), (crossing(out) - crossing(truth)) * 1000


class Ema:
    def __init__(self, alpha: float) -> None:
        self.alpha, self.value = alpha, None

    def __call__(self, row: np.ndarray, t: float) -> np.ndarray:
        self.value = row.copy() if self.value is None else self.value + self.alpha * (row - self.value)
        return self.value


def main(args: argparse.Namespace) -> int:
    t, truth = head_turns(args.camera_fps, args.turn, args.turn_s)
    noisy = truth + np.random.default_rng(args.seed).normal(0.0, args.pose_noise, len(t))
    default = Smoothing()
    settings = [("none", None), ("average, alpha 0.5", Ema(0.5)), ("average, alpha 0.2", Ema(0.2))]
    for cutoff, beta in [(0.5, 0.05), (0.5, 0.1), (0.5, 0.2), (1.0, 0.05), (1.0, 0.2), (2.0, 0.2)]:
        mark = "  (default)" if (cutoff, beta) == (default.min_cutoff_hz, default.beta) else ""
        settings.append((f"one-euro {cutoff:g} Hz, beta {beta:g}{mark}",
                         OneEuro(Smoothing(min_cutoff_hz=cutoff, beta=beta))))
    print(f"face-row smoothing: {args.camera_fps:g} fps camera, pose jitter sd {args.pose_noise:g} deg, a "
          f"{args.turn:g} deg turn over {args.turn_s:g} s (synthetic)")
    print(f"{'setting':38s} {'jitter (deg/frame)':>18s} {'vs none':>8s} {'lag (ms)':>9s}")
    base = None
    for name, smoother in settings:
        jitter, lag = measure(smoother, t, truth, noisy, args.turn_s)
        base = base or jitter
        print(f"{name:38s} {jitter:18.3f} {jitter / base:7.2f}x {lag:9.1f}")
    return 0
