"""Held-out evaluation: expression and pose L2, a lip-sync proxy, and diversity across seeds.

Generation is autoregressive as in the app: the first `context` frames of each clip are given (ground truth),
then windows of N frames are sampled, each conditioned on the previous `context` generated frames and the audio.

Lip-sync proxy: the Pearson correlation between the generated mouth opening (`training.mouth.MOUTH_OPEN`, a
fixed projection of the expression columns) and the speech envelope (frame RMS), computed per clip for every
lag in [-max_lag, max_lag] (positive lag: mouth trails the audio), averaged over clips; we report the best
lag and its correlation. Diversity: the per-frame std across seeds of the normalised motion, averaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.layout import EXP, POSE
from training.data import Clip
from training.mouth import mouth_opening


@dataclass
class EvalConfig:
    window: int = 25
    steps: int = 10
    cfg_scale: float = 1.0
    seeds: int = 3
    max_lag: int = 6
    max_clips: int = 0  # 0 = all
    chunk: int = 0  # streaming DiT: frames per call (0: the model's default)


def sample_window(model, diffusion, context: torch.Tensor, audio: torch.Tensor, n: int, steps: int,
                  cfg_scale: float, generator: torch.Generator) -> torch.Tensor:
    """Strided DDIM with classifier-free guidance: (B,C,70), (B,C+n,D) -> (B,n,70) normalised motion."""
    from core.motion.diffusion import conditioned, guided, sample_ddim

    denoise = guided(conditioned(model, context, audio), cfg_scale)
    return sample_ddim(denoise, diffusion, (context.shape[0], n, context.shape[2]), steps,
                       generator=generator, device=context.device)


@torch.no_grad()
def generate(model, diffusion, clip: Clip, mean, std, context: int, cfg: EvalConfig, seed: int) -> np.ndarray:
    """Whole-clip motion (T, 70) in layout units; the first `context` rows are the ground truth."""
    device = next(model.parameters()).device
    motion = torch.from_numpy((clip.motion - mean) / std).float().to(device)
    audio = torch.from_numpy(np.array(clip.audio, np.float32)).to(device)  # a copy: packed clips are read-only
    g = torch.Generator(device=device).manual_seed(seed)
    if model.config.kind == "streaming":  # frame by frame as live: chunks of `chunk` frames (0: the model's)
        from core.motion.rollout import rollout

        k = cfg.chunk or model.config.chunk
        out = rollout(model, diffusion, motion[:context], audio, k, cfg.steps, cfg.cfg_scale, g)
        return out.cpu().numpy() * std + mean
    out = [motion[:context]]
    s = context
    total = len(motion)
    while s < total:
        n = min(cfg.window, total - s)
        ctx = torch.cat(out)[-context:]
        win = sample_window(model, diffusion, ctx[None], audio[s - context: s + n][None], n, cfg.steps,
                            cfg.cfg_scale, g)
        out.append(win[0].float())
        s += n
    return torch.cat(out).cpu().numpy() * std + mean


def lag_correlation(x: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """corr(x[k], y[k - lag]) for lag = -max_lag..max_lag (x trails y by `lag` frames when positive)."""
    out = np.zeros(2 * max_lag + 1)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        a = x[max(lag, 0): len(x) + min(lag, 0)]
        b = y[max(-lag, 0): len(y) + min(-lag, 0)]
        if len(a) > 2 and a.std() > 1e-9 and b.std() > 1e-9:
            out[i] = float(np.corrcoef(a, b)[0, 1])
    return out


def lip_sync(motions: list[np.ndarray], clips: list[Clip], start: int, max_lag: int) -> tuple[float, int]:
    curves = np.mean([lag_correlation(mouth_opening(m[start:]), c.envelope[start:], max_lag)
                      for m, c in zip(motions, clips)], axis=0)
    best = int(np.argmax(curves))
    return float(curves[best]), best - max_lag


def evaluate(model, diffusion, clips: list[Clip], mean, std, context: int, cfg: EvalConfig) -> dict:
    model.eval()
    clips = clips[: cfg.max_clips] if cfg.max_clips else clips
    runs = [[generate(model, diffusion, c, mean, std, context, cfg, seed) for c in clips]
            for seed in range(cfg.seeds)]
    first = runs[0]
    exp_l2 = np.mean([np.linalg.norm(m[context:, EXP] - c.motion[context:, EXP], axis=1).mean()
                      for m, c in zip(first, clips)])
    pose_l2 = np.mean([np.linalg.norm(m[context:, POSE] - c.motion[context:, POSE], axis=1).mean()
                       for m, c in zip(first, clips)])
    corr, lag = lip_sync(first, clips, context, cfg.max_lag)
    gt_corr, gt_lag = lip_sync([c.motion for c in clips], clips, context, cfg.max_lag)
    diversity = (float(np.mean([np.std(np.stack([r[i][context:] for r in runs]) / std, axis=0).mean()
                                for i in range(len(clips))])) if cfg.seeds > 1 else 0.0)
    return {"clips": len(clips), "exp_l2": float(exp_l2), "pose_l2_deg": float(pose_l2), "lipsync_corr": corr,
            "lipsync_lag": lag, "gt_lipsync_corr": gt_corr, "gt_lipsync_lag": gt_lag, "diversity": diversity}


def load_for_eval(path: str | Path):
    """A training checkpoint (EMA weights) or an exported .safetensors motion model -> (model, mean, std, context)."""
    from training.checkpointing import load_base
    from training.train import build_model

    path = Path(path)
    state, model_cfg, stats = load_base(path)
    audio_dim, context = model_cfg.get("audio_dim"), model_cfg.get("context", 10)
    model_cfg = {k: v for k, v in model_cfg.items() if k not in ("audio_dim", "context")}
    model = build_model(model_cfg, audio_dim, context)
    model.load_state_dict(state)
    model.float()
    return model.eval(), stats[0], stats[1], context


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = EvalConfig()
    p.add_argument("--model", required=True, help="training checkpoint (ckpt-*.pt) or exported motion model")
    p.add_argument("--data", required=True, help="dataset folder (preprocess or synth output)")
    p.add_argument("--split", default="val", choices=["val", "train"], help="which clips to evaluate on")
    p.add_argument("--window", type=int, default=d.window, help="frames generated per window (as the app's window)")
    p.add_argument("--steps", type=int, default=d.steps, help="DDIM sampling steps per window (streaming: per call)")
    p.add_argument("--chunk", type=int, default=d.chunk, help="streaming DiT: frames per call (0: the model's)")
    p.add_argument("--cfg-scale", type=float, default=d.cfg_scale, help="classifier-free guidance scale (1: off)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="samples per clip; diversity is their spread")
    p.add_argument("--max-lag", type=int, default=d.max_lag, help="frames of lag searched by the lip-sync proxy")
    p.add_argument("--max-clips", type=int, default=d.max_clips, help="evaluate at most this many clips (0: all)")
    p.add_argument("--json", default="", help="also write the metrics to this file ('': don't)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def main(args: argparse.Namespace) -> int:
    from core.atomic import atomic_path
    from core.motion.checkpoint import MotionCheckpointError
    from training.data import DataError, load_clips
    from training.train import build_diffusion

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        model, mean, std, context = load_for_eval(args.model)
        clips = load_clips(args.data, args.split)
    except DataError as exc:
        hint = (" Evaluate on the training clips with --split train (optimistic), or rebuild the dataset with "
                "validation clips (preprocess --val-fraction, synth --val-clips).") if args.split == "val" else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except (FileNotFoundError, MotionCheckpointError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = EvalConfig(args.window, args.steps, args.cfg_scale, args.seeds, args.max_lag, args.max_clips, args.chunk)
    metrics = evaluate(model, build_diffusion(model.config.diffusion_steps), clips, mean, std, context, cfg)
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(text)
    return 0
