"""Renderer benchmark: per-stage ms/frame and fps, batch 1 and 8, eager vs torch.compile (and fp16 on CUDA).

Every row is a ratio to plain eager fp32 batch 1 measured in the same run. The networks are stand-ins of the
chosen size with random weights: speed does not depend on the weights' values, so no download is needed.
Stages are timed inside one real pass (the device is synchronised between stages), so they add up to the
frame time instead of being measured in isolation.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from core import layout
from core.device import DeviceSpec, pick_device
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import PreparedPortrait, Renderer

STAGES = ("keypoints", "warping", "spade", "paste", "d2h")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--size", choices=("official", "tiny"), default="official")
    parser.add_argument("--frames", type=int, default=None,
                        help="timed frames per row, rounded up to whole batches (default: 16 on a GPU, 1 on CPU, "
                             "where one official frame takes seconds)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")


def _sync(spec: DeviceSpec) -> None:
    if spec.is_cuda:
        torch.cuda.synchronize(spec.device)
    elif spec.device.type == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def timed_pass(renderer: Renderer, portrait: PreparedPortrait, motion: torch.Tensor,
               host: torch.Tensor) -> dict[str, float]:
    """One batch through the renderer's own stages -> seconds per stage (whole batch)."""
    spec, dtype, b = renderer.spec, renderer.spec.dtype, motion.shape[0]
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    x_d = renderer.driving_keypoints(portrait, motion)
    _sync(spec)
    t1 = time.perf_counter()
    warped = renderer._warp(portrait.feature_3d.expand(b, -1, -1, -1, -1), x_d.to(dtype),
                            portrait.x_s.expand(b, -1, -1).to(dtype))["out"]
    _sync(spec)
    t2 = time.perf_counter()
    faces = renderer._generate(warped)
    _sync(spec)
    t3 = time.perf_counter()
    on_host = spec.device.type == "cpu"  # the paste writes straight into host memory: no copy exists
    frames = renderer.composite(portrait, faces, host if on_host else None)
    _sync(spec)
    t4 = time.perf_counter()
    if not on_host:
        host.copy_(frames, non_blocking=True)
        _sync(spec)
    t5 = time.perf_counter()
    for name, (a, z) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
        times[name] = z - a
    times["total"] = t5 - t0
    return times


def bench_row(renderer: Renderer, portrait: PreparedPortrait, batch: int, frames: int,
              warmup: bool) -> dict[str, float]:
    """Best timed pass (by total) of ceil(frames / batch) passes -> seconds per frame per stage."""
    spec = renderer.spec
    rng = np.random.default_rng(0)
    motion = torch.from_numpy(rng.normal(0, 0.01, (batch, layout.MOTION_DIM)).astype(np.float32)).to(spec.device)
    host = torch.empty((batch, *portrait.image.shape), dtype=torch.uint8, pin_memory=spec.is_cuda)
    if warmup:
        timed_pass(renderer, portrait, motion, host)
    passes = [timed_pass(renderer, portrait, motion, host) for _ in range(max(1, math.ceil(frames / batch)))]
    best = min(passes, key=lambda p: p["total"])
    return {k: v / batch for k, v in best.items()}


def main(args: argparse.Namespace) -> int:
    spec32 = pick_device(args.device, half=False)
    config = LivePortraitConfig.official() if args.size == "official" else LivePortraitConfig.tiny()
    frames = args.frames or (16 if spec32.device.type != "cpu" else 1)
    batches = [int(b) for b in args.batches.split(",")]
    variants = [("eager", False, False)] + ([] if args.no_compile else [("compile", True, False)])
    if spec32.is_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        variants += [("eager fp16", False, True)] + ([] if args.no_compile else [("compile fp16", True, True)])
    from skimage import data

    image = data.astronaut()
    print(f"render benchmark: {config.name} sizes with STAND-IN weights (build_liveportrait random init; speed "
          f"does not depend on weight values); device {spec32.describe()}; torch {torch.__version__}; "
          f"{torch.get_num_threads()} threads; portrait 512x512; best of ceil({frames}/batch) timed batch(es)")
    cols = (*STAGES, "total")
    print("ms per frame" + ("  (CPU: the paste writes into host memory, so d2h is 0)" if not spec32.is_cuda else ""))
    print(f"{'variant':<14}{'batch':>6}" + "".join(f"{s:>11}" for s in cols) + f"{'fps':>9}{'x base':>9}")
    base = None
    for name, compile_, half in variants:
        spec = pick_device(args.device, half=True) if half else spec32
        try:
            renderer = Renderer(build_liveportrait(config, seed=0), spec, compile=compile_)
            portrait = renderer.prepare(image, "astronaut")
        except Exception as exc:
            print(f"{name:<14} unavailable: {exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}")
            continue
        for i, batch in enumerate(batches):
            # compile needs a warm-up per batch size (it specialises); eager only once, to page weights in
            warm = compile_ or i == 0 or spec.device.type != "cpu"
            try:
                row = bench_row(renderer, portrait, batch, frames, warm)
            except Exception as exc:  # e.g. no C++ compiler for inductor: report the row, keep going
                print(f"{name:<14}{batch:>6}  failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}")
                continue
            if base is None:
                base = row["total"]
            print(f"{name:<14}{batch:>6}" + "".join(f"{row[s] * 1e3:>11.2f}" for s in cols)
                  + f"{1 / row['total']:>9.2f}{base / row['total']:>9.2f}", flush=True)
    print("x base = speed relative to eager fp32 batch 1 in this run (higher is faster)")
    return 0
