"""JoyVASA's motion generator (`DitTalkingHead` for inference), its offline pipeline and its loader.

Generation (as JoyVASA's wrapper does it): 1,280 zero samples in front; windows of N frames, each conditioned on
the previous window's last 10 motion frames and audio features (learned start tokens for the first window);
DDPM ancestral sampling of x0 with classifier-free guidance on the audio. The checkpoint carries its own HuBERT
encoder, so no other model is needed. Parameter names equal the checkpoint's state-dict keys, so the published
file loads strictly.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.motion.joyvasa.audio import build_hubert, encode_window, hubert_config
from core.motion.joyvasa.denoiser import JoyVASADenoiser, JoyVASADenoiserConfig, sinusoid_table
from core.motion.joyvasa.files import MotionTemplate, read_checkpoint, refuse, resolve_files
from core.timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

LEADING_SILENCE = 2 * SAMPLES_PER_FRAME  # JoyVASA's wrapper puts 2 frames (1,280 samples) of silence in front ...
TRAILING_SILENCE = SAMPLES_PER_FRAME  # ... and 1 behind
HUBERT_AUDIO_MODELS = ("hubert_zh", "hubert_zh_ori")
ARCH_FIELDS = ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "audio_model", "n_diff_steps")
WEIGHT_NORM_ALIASES = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}

Noise = Callable[[tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class JoyVASAArgs:
    """The six values of the checkpoint's `args` that shape the network (all others are ignored, n_layers too)."""

    motion_feat_dim: int = 73
    n_motions: int = 100
    n_prev_motions: int = 10
    feature_dim: int = 256
    audio_model: str = "hubert_zh"
    n_diff_steps: int = 50

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, path: Path) -> JoyVASAArgs:
        missing = [k for k in ARCH_FIELDS if not hasattr(ns, k)]
        if missing:
            raise refuse(path, f"its args lack {missing}")
        args = cls(**{k: getattr(ns, k) for k in ARCH_FIELDS})
        if args.audio_model not in HUBERT_AUDIO_MODELS:
            raise refuse(path, f"audio_model {args.audio_model!r} is not supported (only the Chinese-HuBERT "
                                f"generator {HUBERT_AUDIO_MODELS} was published)")
        return args


class DiffusionSchedule(nn.Module):
    """The checkpoint's `diffusion_sched.*` buffers (cosine DDPM schedule, index 0 = clean)."""

    def __init__(self, n_steps: int) -> None:
        super().__init__()
        for name in ("betas", "alphas", "alpha_bars", "sigmas_flex", "sigmas_inflex"):
            self.register_buffer(name, torch.zeros(n_steps + 1))

    def coefficients(self, t: int, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_s = c0 x_t + c1 x0 + sigma z (posterior of the ancestral step t -> s < t)."""
        ab_t, ab_s = self.alpha_bars[t], self.alpha_bars[s]
        if s == t - 1:  # the official step: the stored alphas and posterior std
            alpha, sigma = self.alphas[t], self.sigmas_inflex[t]
        else:  # a strided step over several schedule steps
            alpha = ab_t / ab_s
            sigma = torch.sqrt((1 - ab_s) / (1 - ab_t) * (1 - alpha))
        c0 = (1 - ab_s) * torch.sqrt(alpha) / (1 - ab_t)
        c1 = (1 - alpha) * torch.sqrt(ab_s) / (1 - ab_t)
        return c0, c1, sigma


def step_sequence(n_diff_steps: int, steps: int) -> list[int]:
    """Descending timesteps n..1 (all of them, or `steps` of them evenly strided); each goes to the next, then 0."""
    steps = max(1, min(steps, n_diff_steps))
    ts = np.unique(np.round(np.linspace(1, n_diff_steps, steps)).astype(int))[::-1]
    return [int(t) for t in ts]


class JoyVASAModel(nn.Module):
    """JoyVASA's `DitTalkingHead` for inference: parameter names equal the checkpoint's state-dict keys."""

    def __init__(self, args: JoyVASAArgs = JoyVASAArgs(), positional_encoding: str = "prefix",
                 hubert=None, denoiser: JoyVASADenoiserConfig | None = None) -> None:
        super().__init__()
        self.args = args
        d = args.feature_dim
        self.start_audio_feat = nn.Parameter(torch.zeros(1, args.n_prev_motions, d))
        self.start_motion_feat = nn.Parameter(torch.zeros(1, args.n_prev_motions, args.motion_feat_dim))
        self.null_audio_feat = nn.Parameter(torch.zeros(1, 1, d))
        self.audio_encoder = hubert if hubert is not None else build_hubert()
        self.audio_feature_map = nn.Linear(self.audio_encoder.config.hidden_size, d)
        self.denoising_net = JoyVASADenoiser(denoiser or JoyVASADenoiserConfig(
            motion_dim=args.motion_feat_dim, n_motions=args.n_motions, n_prev_motions=args.n_prev_motions,
            feature_dim=d, positional_encoding=positional_encoding))
        self.diffusion_sched = DiffusionSchedule(args.n_diff_steps)

    @classmethod
    def synthetic(cls, seed: int = 0, positional_encoding: str = "prefix") -> JoyVASAModel:
        """A tiny random model of the same structure (development and tests without the published file)."""
        torch.manual_seed(seed)
        hcfg = hubert_config()
        for k, v in dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2).items():
            setattr(hcfg, k, v)
        from transformers import HubertModel

        args = JoyVASAArgs(feature_dim=32)
        den = JoyVASADenoiserConfig(feature_dim=32, n_layers=2, n_heads=2, positional_encoding=positional_encoding)
        model = cls(args, positional_encoding, HubertModel(hcfg), den)
        with torch.no_grad():
            for name, value in _cosine_schedule(args.n_diff_steps).items():
                getattr(model.diffusion_sched, name).copy_(value)
            for p in (model.start_audio_feat, model.start_motion_feat, model.null_audio_feat):
                p.uniform_(-1, 1)
        return model.eval()

    # ------------------------------------------------------------------ pieces
    def audio_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 640 n) raw samples -> (B, n, D)."""
        return encode_window(self.audio_encoder, self.audio_feature_map, wave)

    def denoise(self, x_t, audio, prev_motion, prev_audio, t: int, cfg_scale: float):
        """Guided x0 estimate for the window (B, N, 73) and the raw (uncond, cond) network outputs (B, C+N, 73)."""
        b, n = x_t.shape[:2]
        if cfg_scale == 1.0:
            step = torch.full((b,), t, dtype=torch.long, device=x_t.device)
            cond = self.denoising_net(x_t, audio, prev_motion, prev_audio, step)
            return cond[:, -n:], None, cond
        null = self.null_audio_feat.expand(b, n, -1)
        step = torch.full((2 * b,), t, dtype=torch.long, device=x_t.device)
        out = self.denoising_net(torch.cat((x_t, x_t)), torch.cat((null, audio)),
                                 torch.cat((prev_motion, prev_motion)), torch.cat((prev_audio, prev_audio)), step)
        uncond, cond = out[:b], out[b:]
        u, c = uncond[:, -n:], cond[:, -n:]
        return u + cfg_scale * (c - u), uncond, cond

    def sample(self, audio, prev_motion, prev_audio, x_T: torch.Tensor, noise: Noise,
               cfg_scale: float = 2.8, steps: int | None = None) -> torch.Tensor:
        """Ancestral sampling from x_T; `noise(shape)` gives each step's fresh N(0, 1) draw (t > 1 only)."""
        ts = step_sequence(self.args.n_diff_steps, steps or self.args.n_diff_steps)
        x = x_T
        for i, t in enumerate(ts):
            s = ts[i + 1] if i + 1 < len(ts) else 0
            x0, _, _ = self.denoise(x, audio, prev_motion, prev_audio, t, cfg_scale)
            c0, c1, sigma = self.diffusion_sched.coefficients(t, s)
            x = c0 * x + c1 * x0
            if s > 0:
                x = x + sigma * noise(tuple(x.shape)).to(x)
        return x

    @torch.inference_mode()
    def generate(self, wave: np.ndarray, cfg_scale: float = 2.8, noise: Noise | None = None,
                 steps: int | None = None) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
        """JoyVASA's offline pipeline on a whole clip -> (floor(L / 640), 73) coefficients, L = padded length,
        and per-window audio features / motion."""
        if noise is None:
            noise = torch_noise(torch.Generator().manual_seed(0))
        a = self.args
        per_window = SAMPLES_PER_FRAME * a.n_motions
        x = np.concatenate((np.zeros(LEADING_SILENCE, np.float32), np.asarray(wave, np.float32).reshape(-1),
                            np.zeros(TRAILING_SILENCE, np.float32)))
        length = len(x)
        clip_len = int(length / SAMPLE_RATE * FPS)
        n_windows = 1 if clip_len <= a.n_motions else math.ceil(clip_len / a.n_motions)
        x = np.concatenate((x, np.zeros(per_window * n_windows - length, np.float32)))
        device = self.start_motion_feat.device
        prev_motion, prev_audio = self.start_motion_feat, self.start_audio_feat
        x_T = noise((1, a.n_motions, a.motion_feat_dim)).to(device)
        windows, coefs = [], []
        for i in range(n_windows):
            wave_i = torch.from_numpy(x[i * per_window : (i + 1) * per_window]).to(device)[None]
            audio = self.audio_features(wave_i)
            motion = self.sample(audio, prev_motion, prev_audio, x_T, noise, cfg_scale, steps)
            prev_motion, prev_audio = motion[:, -a.n_prev_motions :], audio[:, -a.n_prev_motions :]
            windows.append({"audio_feat": audio.cpu().numpy(), "motion": motion.cpu().numpy()})
            coefs.append(motion[0])
        coef = torch.cat(coefs).float().cpu().numpy()
        drop = math.ceil((per_window * n_windows - length) / SAMPLES_PER_FRAME)
        return coef[: len(coef) - drop], windows


def torch_noise(generator: torch.Generator) -> Noise:
    return lambda shape: torch.randn(shape, generator=generator)


def _cosine_schedule(n: int, s: float = 0.008) -> dict[str, torch.Tensor]:
    """JoyVASA's cosine schedule (used only for the synthetic stand-in; real buffers come from the file)."""
    x = torch.linspace(0, n, n + 1)
    ab = torch.cos(((x / n) + s) / (1 + s) * math.pi / 2) ** 2
    ab = ab / ab[0]
    betas = torch.cat((torch.zeros(1), torch.clip(1 - ab[1:] / ab[:-1], 1e-4, 0.999)))
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, 0)
    inflex = torch.zeros(n + 1)
    inflex[1:] = torch.sqrt((1 - alpha_bars[:-1]) / (1 - alpha_bars[1:]) * betas[1:])
    return {"betas": betas, "alphas": alphas, "alpha_bars": alpha_bars, "sigmas_flex": betas.sqrt(),
            "sigmas_inflex": inflex}


def load_state_dict_strictly(model: JoyVASAModel, state: dict[str, torch.Tensor], path: Path) -> None:
    """Every key of the file must be consumed and every parameter filled, with the same shape and dtype."""
    renamed = {}
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        renamed[f"{head}.{WEIGHT_NORM_ALIASES[leaf]}" if leaf in WEIGHT_NORM_ALIASES else key] = value
    expected = model.state_dict()
    missing = [k for k in expected if k not in renamed]
    unexpected = [k for k in renamed if k not in expected]
    wrong = [f"{k} {tuple(v.shape)}/{v.dtype} (expected {tuple(expected[k].shape)}/{expected[k].dtype})"
             for k, v in renamed.items() if k in expected and (v.shape != expected[k].shape
                                                                or v.dtype != expected[k].dtype)]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape/dtype", wrong)):
        if keys:
            problems.append(f"{len(keys)} {what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
    if problems:
        raise refuse(path, "does not match JoyVASA's motion generator (" + "; ".join(problems) + ")")
    model.load_state_dict(renamed, strict=True)
    # JoyVASA's loader drops the file's step table and keeps the one its constructor computes
    den = model.denoising_net
    den.TE.pe.copy_(sinusoid_table(den.TE.pe.shape[1], den.TE.pe.shape[2]))


@dataclass
class JoyVASA:
    """The loaded generator and its normalisation template."""

    model: JoyVASAModel
    template: MotionTemplate
    raw_args: argparse.Namespace | None = None


@torch.no_grad()
def load_joyvasa(root: str | Path, device: str | torch.device = "cpu", positional_encoding: str = "prefix",
                 attn_implementation: str = "eager") -> JoyVASA:
    """Load the published files unchanged from a weights root. Raises MissingWeightsError (not installed) or
    JoyVASACheckpointError (wrong, truncated or mismatched file) with the fix."""
    ckpt_path, tpl_path = resolve_files(root)
    template = MotionTemplate.load(tpl_path)
    ckpt = read_checkpoint(ckpt_path)
    args = JoyVASAArgs.from_namespace(ckpt["args"], ckpt_path)
    model = JoyVASAModel(args, positional_encoding, build_hubert(attn_implementation))
    load_state_dict_strictly(model, ckpt["model"], ckpt_path)
    return JoyVASA(model.to(device).eval(), template, ckpt["args"])
