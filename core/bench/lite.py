"""Lite-mode benchmark: per-frame cost of the lite renderer next to the full one (same run, same portrait),
atlas build time and size, and crossfade vs flow-guided interpolation between mouth levels.

Portraits: scikit-image's astronaut at 512x512, and the same photo in a 1280x720 canvas (the output sizes the
issue asks about; the frame size is the portrait's). Networks are stand-ins of the chosen size with random
weights (speed does not depend on weight values). The atlas is built into a temporary folder, so the build time
is real and nothing is left in the user's cache. Timings: the full renderer runs after the atlas build has
warmed it; the lite renderer renders a talking sequence (mouth sweep, a blink, head sway) one frame per call,
as live does, and reports the mean and p95.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cv2
import numpy as np
import torch
from torch import nn

from core import layout
from core.cli_args import add_size_argument
from core.device import pick_device
from core.face import psnr
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import Renderer
from core.timebase import FPS


class LinearRetarget(nn.Module):
    """A stand-in retargeting MLP that reacts: gain x (target - source ratio) on the y of some keypoints.

    The random stand-in lip / eye MLPs move keypoints by ~3e-4, so their mouth levels render identically and an
    interpolation comparison would measure nothing; with these, neighbouring levels differ by grey levels in
    the tens (tiny) and the comparison has something to find. Speed is unaffected."""

    def __init__(self, keypoints: tuple[int, ...], gain: float) -> None:
        super().__init__()
        d = torch.zeros(21, 3)
        d[list(keypoints), 1] = gain
        self.register_buffer("direction", d.reshape(1, 63))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, -1:] - x[:, -2:-1]) * self.direction


def responsive_models(config: LivePortraitConfig):
    """Stand-in networks of `config`'s size with LinearRetarget lip (+0.6) and eye (-0.6) MLPs."""
    from core.motion.retarget_source import EYE_KEYPOINTS, LIP_KEYPOINTS

    models = build_liveportrait(config, seed=0)
    models.lip = LinearRetarget(LIP_KEYPOINTS, 0.6)
    models.eye = LinearRetarget(EYE_KEYPOINTS, -0.6)
    return models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (the full renderer's)")
    add_size_argument(parser, default="official")
    parser.add_argument("--atlas", default="9x3", metavar="LIPxEYE",
                        help="atlas grid to build and time (default 9x3; 2x1 for a quick official-size run)")
    parser.add_argument("--frames", type=int, default=250, help="lite frames timed per portrait size")
    parser.add_argument("--midpoints", type=int, default=2,
                        help="mouth-level midpoints rendered by the full renderer to compare crossfade and flow")


def portraits() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    face = data.astronaut()
    wide = cv2.resize(face, (720, 720), interpolation=cv2.INTER_AREA)
    wide = cv2.copyMakeBorder(wide, 0, 0, 280, 280, cv2.BORDER_REFLECT)
    return [("512x512", face), ("1280x720", wide)]


def talking_rows(models, portrait, n: int) -> np.ndarray:
    """A retarget-like sequence: mouth sweeping with speech, a blink every 2 s, slow head sway."""
    from core.motion.retarget_source import RetargetMotionSource

    source = RetargetMotionSource(models)
    source.reset(portrait)
    t = np.arange(n) / FPS
    lip = 0.55 * np.clip(np.sin(2 * np.pi * 1.7 * t) * 0.5 + 0.5, 0, 1) ** 1.5
    phase = (t % 2.0) / 0.12
    eye = np.where(phase < 1, 0.35 * (1 - np.sin(np.pi * np.clip(phase, 0, 1))), 0.35)
    rows = layout.neutral(n)
    rows[:, layout.EXP] = source.expression(lip, eye)
    rows[:, layout.PITCH] = 2.0 * np.sin(2 * np.pi * 0.23 * t)
    rows[:, layout.YAW] = 3.0 * np.sin(2 * np.pi * 0.17 * t + 1)
    rows[:, layout.ROLL] = 1.5 * np.sin(2 * np.pi * 0.11 * t + 2)
    return rows


def flow_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow a -> b (a(p) ~ b(p + F(p))) by OpenCV's DIS, on grey images."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)


def flow_interpolate(a: np.ndarray, b: np.ndarray, flow: np.ndarray, t: float, grid: np.ndarray) -> np.ndarray:
    """The flow-guided candidate: warp a forward by t F and b back by (1 - t) F, then crossfade."""
    wa = cv2.remap(a, grid - t * flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wb = cv2.remap(b, grid + (1 - t) * flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.addWeighted(wa, 1 - t, wb, t, 0)


def main(args: argparse.Namespace) -> int:
    from core.lite.atlas import AtlasSpec, AtlasStore
    from core.lite.renderer import LiteRenderer

    spec = pick_device(args.device, half=False)
    config = LivePortraitConfig.official() if args.size == "official" else LivePortraitConfig.tiny()
    grid = AtlasSpec.parse(args.atlas)
    full = Renderer(responsive_models(config), spec)
    print(f"lite benchmark: {config.name} sizes with STAND-IN weights (random init, linear lip/eye retargeting "
          f"stand-ins so mouth levels differ; speed does not depend on weight values); full renderer on "
          f"{spec.describe()}, lite on the host CPU; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; OpenCV {cv2.__version__}; atlas {grid.lip_levels}x{grid.eye_levels}")
    print(f"{'output':<10}{'full ms':>11}{'lite ms':>10}{'lite p50':>10}{'lite p95':>10}{'x faster':>10}"
          f"{'build s':>9}{'s/entry':>9}{'disk MB':>9}{'RAM MB':>8}")
    quality: list[str] = []
    with tempfile.TemporaryDirectory(prefix="headcast-bench-lite-") as tmp:
        lite = LiteRenderer(full, grid, AtlasStore(tmp))
        for name, image in portraits():
            t0 = time.perf_counter()
            portrait = lite.prepare(image, name)
            build_total = time.perf_counter() - t0
            atlas = portrait.atlas
            motion = torch.zeros(1, layout.MOTION_DIM)
            motion[0, layout.YAW] = 2.0
            t0 = time.perf_counter()
            full.render(portrait.base, motion)
            full_s = time.perf_counter() - t0
            rows = talking_rows(full.models, portrait, args.frames)
            lite.render(portrait, rows[:1])  # ring buffers are made on the first call
            times = np.empty(len(rows))
            for i in range(len(rows)):
                t0 = time.perf_counter()
                lite.render(portrait, rows[i : i + 1])
                times[i] = time.perf_counter() - t0
            mean, p50, p95 = times.mean(), float(np.median(times)), float(np.percentile(times, 95))
            disk = atlas.path.stat().st_size / 2**20
            print(f"{name:<10}{full_s * 1e3:>11.1f}{mean * 1e3:>10.2f}{p50 * 1e3:>10.2f}{p95 * 1e3:>10.2f}"
                  f"{full_s / mean:>10.0f}"
                  f"{atlas.build_s:>9.1f}{atlas.build_s / grid.entries:>9.2f}{disk:>9.2f}"
                  f"{atlas.nbytes / 2**20:>8.1f}  (prepare + build + save {build_total:.1f} s)", flush=True)
            if name == "512x512" and args.midpoints > 0:
                quality = compare_interpolation(full, lite, portrait, args.midpoints)
    print("x faster = full ms / lite mean ms, both measured above in this run (lite ms = mean over the frames; on a "
          "busy machine the mean and p95 carry scheduler waits that p50 does not)")
    for line in quality:
        print(line)
    return 0


def compare_interpolation(full: Renderer, lite, portrait, count: int) -> list[str]:
    """Crossfade vs flow-guided interpolation at midpoints between neighbouring mouth levels (eyes open),
    against a true full render there: PSNR over the face region and per-frame cost."""
    from core.motion.retarget_source import RetargetMotionSource

    atlas, spec = portrait.atlas, portrait.atlas.spec
    source = RetargetMotionSource(full.models)
    source.reset(portrait)
    open_row = spec.eye_levels - 1
    levels = spec.lip_grid()
    picks = np.linspace(0, spec.lip_levels - 2, min(count, spec.lip_levels - 1)).round().astype(int)
    y0, y1, x0, x1 = portrait.base.roi
    h, w = y1 - y0, x1 - x0
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    rows = layout.neutral(len(picks))
    rows[:, layout.EXP] = source.expression((levels[picks] + levels[picks + 1]) / 2, np.full(len(picks),
                                                                                          spec.open_eye_ratio))
    truth = full.render(portrait.base, rows)[:, y0:y1, x0:x1].copy()
    lite_frames = lite.render(portrait, rows)[:, y0:y1, x0:x1]
    mask = portrait.mask[..., None]
    bg = portrait.background.astype(np.float32)
    out = [f"interpolation at {len(picks)} mouth midpoint(s), PSNR dB vs the full render over the face region "
           f"(stand-in weights: noise-like faces, not a real mouth)"]
    cross, flow_p, neighbour = [], [], []
    t_flow = t_cross = 0.0
    for k, i in enumerate(picks):
        a, b = atlas.faces[open_row, i], atlas.faces[open_row, i + 1]
        t0 = time.perf_counter()
        lite.render(portrait, rows[k : k + 1])
        t_cross += time.perf_counter() - t0
        flow = flow_between(a, b)
        t0 = time.perf_counter()
        face = flow_interpolate(a, b, flow, 0.5, grid)
        frame = (bg * (1 - mask) + face.astype(np.float32) * mask).round().astype(np.uint8)
        t_flow += time.perf_counter() - t0
        cross.append(psnr(lite_frames[k], truth[k]))
        flow_p.append(psnr(frame, truth[k]))
        near = (bg * (1 - mask) + a.astype(np.float32) * mask).round().astype(np.uint8)
        neighbour.append(psnr(near, truth[k]))
    n = len(picks)
    out.append(f"  crossfade      {np.mean(cross):6.2f} dB  {t_cross / n * 1e3:6.2f} ms/frame (whole lite frame)")
    out.append(f"  flow-guided    {np.mean(flow_p):6.2f} dB  {t_flow / n * 1e3:6.2f} ms/frame (interpolation + "
               f"blend only; its flow is precomputed)")
    out.append(f"  nearest level  {np.mean(neighbour):6.2f} dB  (no interpolation, for scale)")
    return out
