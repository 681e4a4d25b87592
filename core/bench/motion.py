"""Motion benchmark: wav2vec2 ms per streaming hop and DiT ms per window over steps x window sizes, with each
setting's latency = algorithmic (waiting for audio) + compute. Default model sizes, random weights."""

from __future__ import annotations

import argparse
import time

import torch

from core.audio.features import AudioFeatureConfig, AudioFeatureExtractor, measure_hop_ms
from core.device import pick_device
from core.motion.diffusion import CosineSchedule, conditioned, guided, sample_ddim
from core.motion.dit import DiTConfig, MotionDiT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", default="5,10,25,50")
    parser.add_argument("--windows", default="10,25,65")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)


def main(args: argparse.Namespace) -> int:
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
