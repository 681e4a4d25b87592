"""Streaming DiT benchmark: ms per call and per frame over chunk sizes k and sampling steps, guidance folded into
one pass vs classifier-free guidance's two, the latency each setting has by construction, and what a key/value
cache of the context could save at most (a forward over the k new tokens alone vs over context + k).
Default model size, random weights; the windowed design's figures are `python -m core bench motion`'s."""

from __future__ import annotations

import argparse
import time

import torch

from core.device import pick_device
from core.motion.diffusion import CosineSchedule, conditioned, folded, guided, sample_ddim
from core.motion.dit import DiTConfig
from core.motion.models import build_dit
from core.timebase import FRAME_MS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", default="default", choices=["default", "small"],
                        help="DiTConfig() (512 wide, 8 layers) or the small design the stand-ins use")
    parser.add_argument("--chunks", default="1,2,4", help="frames per call")
    parser.add_argument("--steps", default="1,2,4,10", help="sampling steps per call")
    parser.add_argument("--feature-latency-ms", type=float, default=40.0,
                        help="the speech feature stream's latency (its look-ahead + pad) the totals assume")
    parser.add_argument("--repeats", type=int, default=5)


def best_ms(fn, repeats: int, cuda: bool) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main(args: argparse.Namespace) -> int:
    spec = pick_device(args.device, half=False)
    dev = spec.device
    base = DiTConfig() if args.size == "default" else DiTConfig.small_streaming(audio_dim=768)
    config = DiTConfig.from_dict({**base.to_dict(), "kind": "streaming", "guidance_embed": True,
                                  "max_frames": max(base.max_frames, 32)})
    model = build_dit(config).to(dev).eval()
    schedule = CosineSchedule(config.diffusion_steps)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    c, la = config.context, config.lookahead
    print(f"streaming DiT benchmark on {spec.describe()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{config.layers} layers x {config.width}, {params:.1f} M params, context {c}, look-ahead {la} frames; "
          f"latency = features {args.feature_latency_ms:.1f} ms + (L + k - 1) x 40 ms")
    print(f"{'k':>3}{'steps':>7}{'folded ms/call':>16}{'2-pass ms/call':>16}{'ms/frame':>10}{'latency ms':>12}"
          f"{'RT ok':>7}")
    g = torch.Generator().manual_seed(0)
    cuda = spec.is_cuda

    def sampling_ms(denoise, x_T, steps: int) -> float:
        return best_ms(lambda: sample_ddim(denoise, schedule, tuple(x_T.shape), steps, device=dev, x_T=x_T),
                       args.repeats, cuda)

    def forward_ms(x, ctx, audio) -> float:
        t = torch.tensor([25], device=dev)
        return best_ms(lambda: model(x, t, ctx, audio), args.repeats, cuda)

    with torch.inference_mode():
        for k in (int(v) for v in args.chunks.split(",")):
            ctx = torch.randn(1, c, config.motion_dim, generator=g).to(dev)
            audio = torch.randn(1, c + k + la, config.audio_dim, generator=g).to(dev)
            x_T = torch.randn(1, k, config.motion_dim, generator=g).to(dev)
            for steps in (int(v) for v in args.steps.split(",")):
                one = sampling_ms(folded(model, ctx, audio, 2.0), x_T, steps)
                two = sampling_ms(guided(conditioned(model, ctx, audio), 2.0), x_T, steps)
                latency = args.feature_latency_ms + (la + k - 1) * FRAME_MS
                ok = "yes" if one < k * FRAME_MS else "no"
                print(f"{k:>3}{steps:>7}{one:>16.2f}{two:>16.2f}{one / k:>10.2f}{latency:>12.1f}{ok:>7}")
        # a key/value cache of the context could at best turn a (c + k)-token forward into a k-token one
        for k in (1, 4):
            audio = torch.randn(1, c + k + la, config.audio_dim, generator=g).to(dev)
            x = torch.randn(1, k, config.motion_dim, generator=g).to(dev)
            full = forward_ms(x, torch.randn(1, c, config.motion_dim, generator=g).to(dev), audio)
            alone = forward_ms(x, torch.zeros(1, 0, config.motion_dim, device=dev), audio[:, c:])
            print(f"k={k}: forward over context + k = {c + k} tokens {full:.2f} ms, over the k tokens alone "
                  f"{alone:.2f} ms: a context cache saves at most {full - alone:.2f} ms per pass "
                  f"({(full - alone) / full:.0%})")
    return 0
