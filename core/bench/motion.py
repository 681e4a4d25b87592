"""Motion benchmark: wav2vec2 ms per streaming hop and DiT ms per window over steps x window sizes, with each
setting's latency = algorithmic (waiting for audio) + compute. Default model sizes, random weights."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from core.audio.features import (
    FORMER_STREAMING,
    AudioFeatureConfig,
    AudioFeatureExtractor,
    measure_hop_ms,
    measure_stream_cost,
)
from core.device import pick_device
from core.motion.diffusion import CosineSchedule, conditioned, guided, sample_ddim
from core.motion.dit import DiTConfig, MotionDiT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", default="5,10,25,50")
    parser.add_argument("--windows", default="10,25,65")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default; 1 gives steadier figures on a busy machine)")
    parser.add_argument("--feature-seconds", type=float, default=10.0,
                        help="seconds of audio streamed to time the speech features (today's vs former defaults)")


def main(args: argparse.Namespace) -> int:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    spec = pick_device(args.device, half=False)
    dev = spec.device
    from transformers import Wav2Vec2Config

    feats = AudioFeatureExtractor.from_config(Wav2Vec2Config(), AudioFeatureConfig(), device=dev)  # base size
    hop_ms = measure_hop_ms(feats, hop_ms=40, n=5)
    feature_latency = (feats.stream().lookahead + 40) / 16
    config = DiTConfig()
    model = MotionDiT(config).to(dev).eval()
    schedule = CosineSchedule(config.diffusion_steps)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"motion benchmark on {spec.describe()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"wav2vec2-base (random init, {feats.dim}-d, context {feats.config.left_context_s} s, lookahead "
          f"{feats.config.lookahead_ms:.0f} ms): {hop_ms:.1f} ms per 40 ms hop -> real-time factor {hop_ms / 40:.2f}")
    former = AudioFeatureExtractor(feats.model, replace(feats.config, **FORMER_STREAMING), device=dev)
    cost = {name: measure_stream_cost(ex, args.feature_seconds) for name, ex in (("former", former), ("now", feats))}
    for name, ex in (("former", former), ("now", feats)):
        ms, enc = cost[name]
        print(f"  streaming features, {name:>6} defaults (context {ex.config.left_context_s} s, lookahead "
              f"{ex.config.lookahead_ms:.0f} ms, latency {ex.stream().latency_ms:.1f} ms): {ms:.0f} ms of compute and "
              f"{enc:.1f} s of encoder input per second of speech")
    (ms_former, enc_former), (ms_now, enc_now) = cost["former"], cost["now"]
    print(f"  -> {ms_former / ms_now:.2f}x less compute, {enc_former / enc_now:.2f}x less encoder input per second "
          "of speech")
    print(f"DiT {config.layers} layers x {config.width}, {params:.1f} M params, context {config.context}, CFG "
          f"{args.cfg} (batch 2); latency = algorithmic (N-1 frames + {feature_latency:.0f} ms features) + compute")
    print(f"{'N':>4}{'steps':>7}{'ms/window':>11}{'ms/frame':>10}{'algo ms':>9}{'compute ms':>12}{'latency ms':>12}"
          f"{'RT ok':>7}")
    for n in (int(v) for v in args.windows.split(",")):
        ctx = torch.randn(1, config.context, config.motion_dim, device=dev)
        audio = torch.randn(1, config.context + n, config.audio_dim, device=dev)

        model_fn = conditioned(model, ctx, audio)

        for k in (int(v) for v in args.steps.split(",")):
            def run(n=n, k=k, model_fn=model_fn):
                sample_ddim(guided(model_fn, args.cfg), schedule, (1, n, config.motion_dim), k=k, device=dev,
                            generator=torch.Generator().manual_seed(0))
                if spec.is_cuda:
                    torch.cuda.synchronize()

            run()
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t0)
            window_ms = best * 1000
            algo = (n - 1) * 40 + feature_latency
            compute = window_ms + hop_ms
            # real time needs a window's compute to fit in the N frames of time it covers
            ok = "yes" if window_ms + n * hop_ms < n * 40 else "no"
            print(f"{n:>4}{k:>7}{window_ms:>11.1f}{window_ms / n:>10.2f}{algo:>9.0f}{compute:>12.1f}"
                  f"{algo + compute:>12.0f}{ok:>7}")
    return 0
