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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.motion.diffusion import (
    CosineSchedule,
    Noise,
    conditioned,
    generator_noise,
    guided,
    sample_ancestral,
    sinusoid_table,
)
from core.motion.joyvasa.audio import build_hubert, encode_window, hubert_config
from core.motion.joyvasa.denoiser import (
    POSITIONAL_ENCODINGS,
    JoyVASADenoiser,
    JoyVASADenoiserConfig,
)
from core.motion.joyvasa.files import (
    JoyVASACheckpointError,
    MotionTemplate,
    read_checkpoint,
    refuse,
    resolve_files,
)
from core.timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

LEADING_SILENCE = 2 * SAMPLES_PER_FRAME  # JoyVASA's wrapper puts 2 frames (1,280 samples) of silence in front ...
TRAILING_SILENCE = SAMPLES_PER_FRAME  # ... and 1 behind
HUBERT_AUDIO_MODELS = ("hubert_zh", "hubert_zh_ori")
ARCH_FIELDS = ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "audio_model", "n_diff_steps")
DEFAULT_ENCODING = "prefix"  # what the published weights were trained with (see `denoiser.py`)
WEIGHT_NORM_ALIASES = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}

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

    def schedule(self) -> CosineSchedule:
        """The stored buffers as the toolkit's schedule (float32, JoyVASA's official step numbers)."""
        return CosineSchedule.from_buffers(self.betas, self.alphas, self.alpha_bars, self.sigmas_inflex)


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
    def synthetic(cls, seed: int = 0, positional_encoding: str = "prefix", n_motions: int = 100) -> JoyVASAModel:
        """A tiny random model of the same structure (development and tests without the published file);
        `n_motions`: its window length (shorter windows make window-boundary tests cheap). Deterministic per
        seed; the caller's global RNG is left as it was."""
        from transformers import HubertModel

        hcfg = hubert_config()
        for k, v in dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2).items():
            setattr(hcfg, k, v)
        args = JoyVASAArgs(feature_dim=32, n_motions=n_motions)
        den = JoyVASADenoiserConfig(feature_dim=32, n_motions=n_motions, n_layers=2, n_heads=2,
                                    positional_encoding=positional_encoding)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(args, positional_encoding, HubertModel(hcfg), den)
            with torch.no_grad():
                for name, value in CosineSchedule(args.n_diff_steps).buffers().items():
                    getattr(model.diffusion_sched, name).copy_(value)
                for p in (model.start_audio_feat, model.start_motion_feat, model.null_audio_feat):
                    p.uniform_(-1, 1)
        return model.eval()

    @property
    def positional_encoding(self) -> str:
        return self.denoising_net.positional_encoding

    @positional_encoding.setter
    def positional_encoding(self, name: str) -> None:
        """Switchable at any time (same weights): "prefix" (pre-2025-12-09 code, published weights) | "fixed"."""
        if name not in POSITIONAL_ENCODINGS:
            raise ValueError(f"JoyVASA positional encoding {name!r} is not one of {', '.join(POSITIONAL_ENCODINGS)}")
        self.denoising_net.positional_encoding = name

    # ------------------------------------------------------------------ pieces
    def audio_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 640 n) raw samples -> (B, n, D). transformers' HuBERT draws one number per layer from the global
        CPU RNG even in eval (its layerdrop test), so the call runs on a forked RNG: once per window, 23 us
        measured on the 2-core development machine (under load)."""
        with torch.random.fork_rng(devices=[]):
            return encode_window(self.audio_encoder, self.audio_feature_map, wave)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, audio: torch.Tensor,
                drop_audio: torch.Tensor | None = None) -> torch.Tensor:
        """`core.motion.diffusion.predict_x0`'s call: x_t (B, N, 73), t (B,), context = the previous motion
        (B, C, 73), audio = previous + window features (B, C + N, D); drop_audio (B,) puts the null audio in
        place of the window's features (the previous audio stays, as in JoyVASA's guidance) -> x0 (B, N, 73)."""
        c, n = context.shape[1], x_t.shape[1]
        prev_audio, window = audio[:, :c], audio[:, c:]
        if drop_audio is not None:
            window = torch.where(drop_audio[:, None, None], self.null_audio_feat.expand_as(window), window)
        return self.denoising_net(x_t, window, context, prev_audio, t)[:, -n:]

    def sample(self, audio, prev_motion, prev_audio, x_T: torch.Tensor, noise: Noise,
               cfg_scale: float = 2.8, steps: int | None = None) -> torch.Tensor:
        """Guided ancestral sampling of one window from x_T with the toolkit and this checkpoint's schedule;
        `noise(shape)` gives each step's fresh N(0, 1) draw (t > 1 only)."""
        denoise = guided(conditioned(self, prev_motion, torch.cat((prev_audio, audio), 1)), cfg_scale)
        return sample_ancestral(denoise, self.diffusion_sched.schedule(), tuple(x_T.shape), x_T=x_T,
                                k=steps or self.args.n_diff_steps, noise=noise)

    @torch.inference_mode()
    def generate(self, wave: np.ndarray, cfg_scale: float = 2.8, noise: Noise | None = None,
                 steps: int | None = None) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
        """JoyVASA's offline pipeline on a whole clip -> (floor(L / 640), 73) coefficients, L = padded length
        (wave + 1,280 + 640 samples), and per-window audio features / motion.

        Windows: one if c <= N, else ceil(c / N), each N x 640 samples, no overlap, where c = int(L / 16000 * 25)
        is JoyVASA's own float frame count; it is floor(L / 640) except at a few multiples of 640 where the float
        falls just short, which matters only on a window boundary (L = 128,640: 2 windows, 200 frames rather than
        201, the missing one being the wrapper's trailing silence), kept for parity with the official output.
        When L lies just past a multiple of N x 640 (e.g. 62,200 samples of speech: L = 64,120, one window) the
        windows cover less than L: as in JoyVASA's wrapper nothing is padded then and the last < 640 samples are
        not heard (they do not complete a frame); otherwise the last window is zero-padded and the frames that
        cover only padding are dropped."""
        if noise is None:
            noise = generator_noise(torch.Generator().manual_seed(0))
        a = self.args
        per_window = SAMPLES_PER_FRAME * a.n_motions
        x = np.concatenate((np.zeros(LEADING_SILENCE, np.float32), np.asarray(wave, np.float32).reshape(-1),
                            np.zeros(TRAILING_SILENCE, np.float32)))
        length = len(x)
        clip_len = int(length / SAMPLE_RATE * FPS)
        n_windows = 1 if clip_len <= a.n_motions else math.ceil(clip_len / a.n_motions)
        pad = per_window * n_windows - length  # >= -640: the windows cover c >= floor(L / 640) - 1 frames
        if pad > 0:
            x = np.concatenate((x, np.zeros(pad, np.float32)))
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
        drop = max(0, math.ceil(pad / SAMPLES_PER_FRAME))
        return coef[: len(coef) - drop], windows


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
    den.TE.pe.copy_(sinusoid_table(den.TE.pe.shape[1], den.TE.pe.shape[2])[None])


def recorded_encoding(ns: argparse.Namespace | None, path: Path) -> str | None:
    """The positional encoding a checkpoint says it was trained with (`args.positional_encoding`), if it says.

    The published file records none; it was released (Nov 2024) and very likely trained with the pre-fix code,
    so `DEFAULT_ENCODING` ("prefix") applies to it. A checkpoint trained with JoyVASA's fixed code (2025-12-09
    on) should carry `positional_encoding="fixed"` in its args (add the field when saving), and is then run
    with it unless the user chooses otherwise."""
    value = getattr(ns, "positional_encoding", None) if ns is not None else None
    if value is None:
        return None
    if value not in POSITIONAL_ENCODINGS:
        raise JoyVASACheckpointError(
            f"{path}: its args record positional_encoding={value!r}, not one of {', '.join(POSITIONAL_ENCODINGS)}. "
            "Correct that field of the checkpoint's args (or remove it and choose with --joyvasa-encoding).")
    return value


@dataclass
class JoyVASA:
    """The loaded generator, its normalisation template and the encoding recorded with it (None: unknown)."""

    model: JoyVASAModel
    template: MotionTemplate
    raw_args: argparse.Namespace | None = None
    recorded_encoding: str | None = None

    @property
    def default_encoding(self) -> str:
        return self.recorded_encoding or DEFAULT_ENCODING


@torch.no_grad()
def load_joyvasa(root: str | Path, device: str | torch.device = "cpu", positional_encoding: str | None = None,
                 attn_implementation: str = "eager") -> JoyVASA:
    """Load the published files unchanged from a weights root. `positional_encoding` None: the one recorded
    with the checkpoint, else "prefix". Raises MissingWeightsError (not installed) or JoyVASACheckpointError
    (wrong, truncated or mismatched file) with the fix."""
    ckpt_path, tpl_path = resolve_files(root)
    template = MotionTemplate.load(tpl_path)
    ckpt = read_checkpoint(ckpt_path)
    args = JoyVASAArgs.from_namespace(ckpt["args"], ckpt_path)
    recorded = recorded_encoding(ckpt["args"], ckpt_path)
    model = JoyVASAModel(args, positional_encoding or recorded or DEFAULT_ENCODING, build_hubert(attn_implementation))
    load_state_dict_strictly(model, ckpt["model"], ckpt_path)
    return JoyVASA(model.to(device).eval(), template, ckpt["args"], recorded)
