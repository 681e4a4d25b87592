"""Renderer benchmark: per-stage ms/frame and fps, batch 1 and 8, eager vs torch.compile, vs eager fp32 batch 1.

Stand-in weights (random init) of the chosen size: speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from core.device import DeviceSpec, pick_device
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.motion import layout
from core.render import Renderer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--size", choices=("official", "tiny"), default="official")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats per row (after one warm-up)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")


def _sync(spec: DeviceSpec) -> None:
    if spec.is_cuda:
        torch.cuda.synchronize(spec.device)


def _time(fn: Callable[[], object], spec: DeviceSpec, repeats: int) -> float:
    fn()  # warm-up (and compilation)
    _sync(spec)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(spec)
        best = min(best, time.perf_counter() - start)
    return best


def bench_row(renderer: Renderer, portrait, batch: int, repeats: int) -> dict[str, float]:
    """Per-stage seconds for one batch; each stage is timed on its own with the previous stage's output."""
    spec = renderer.spec
    rng = np.random.default_rng(0)
    motion = torch.from_numpy(rng.normal(0, 0.01, (batch, layout.MOTION_DIM)).astype(np.float32)).to(spec.device)
    dtype = spec.dtype
    with torch.inference_mode():
        x_d = renderer.driving_keypoints(portrait, motion)
        feat = portrait.feature_3d.expand(batch, -1, -1, -1, -1)
        x_s = portrait.x_s.expand(batch, -1, -1).to(dtype)
        warped = renderer._warp(feat, x_d.to(dtype), x_s)["out"]
        faces = renderer._generate(warped)
        frames = renderer.composite(portrait, faces)
        host = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=spec.is_cuda)
        stages = {
            "keypoints": lambda: renderer.driving_keypoints(portrait, motion),
            "warping": lambda: renderer._warp(feat, x_d.to(dtype), x_s),
            "spade": lambda: renderer._generate(warped),
            "paste": lambda: renderer.composite(portrait, faces),
            "d2h": lambda: host.copy_(frames, non_blocking=True),
        }
        times = {name: _time(fn, spec, repeats) for name, fn in stages.items()}
        times["total"] = _time(lambda: renderer.render(portrait, motion, out=host), spec, repeats)
    return {k: v / batch for k, v in times.items()}


def main(args: argparse.Namespace) -> int:
    spec32 = pick_device(args.device, half=False)
    config = LivePortraitConfig.official() if args.size == "official" else LivePortraitConfig.tiny()
    from skimage import data

    image = data.astronaut()
    batches = [int(b) for b in args.batches.split(",")]
    variants = [("eager", False, False)]
    if not args.no_compile:
        variants.append(("compile", True, False))
    if spec32.is_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        variants += [("eager fp16", False, True)] + ([] if args.no_compile else [("compile fp16", True, True)])
    print(f"render benchmark: {config.name} sizes, stand-in (random) weights, device {spec32.describe()}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, best of {args.repeats}")
    header = f"{'variant':<14}{'batch':>6}" + "".join(f"{s:>11}" for s in
                                                      ("keypoints", "warping", "spade", "paste", "d2h", "total")) \
        + f"{'fps':>9}{'x base':>9}"
    print("ms per frame")
    print(header)
    base = None
    for name, compile_, half in variants:
        spec = pick_device(args.device, half=half) if half else spec32
        try:
            renderer = Renderer(build_liveportrait(config, seed=0), spec, compile=compile_)
            portrait = renderer.prepare(image, "astronaut")
            for batch in batches:
                row = bench_row(renderer, portrait, batch, args.repeats)
                base = base or row["total"]
                print(f"{name:<14}{batch:>6}" + "".join(f"{row[s] * 1e3:>11.2f}" for s in
                                                        ("keypoints", "warping", "spade", "paste", "d2h", "total"))
                      + f"{1 / row['total']:>9.2f}{base / row['total']:>9.2f}")
        except Exception as exc:  # a variant that cannot run here (e.g. no compiler) is reported, not fatal
            print(f"{name:<14} unavailable: {exc.__class__.__name__}: {str(exc).splitlines()[0][:90]}")
    print("x base = speed relative to eager fp32 batch 1 (higher is faster)")
    return 0
