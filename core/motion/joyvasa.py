"""JoyVASA's published speech-to-motion generator, loaded unchanged, and a motion source around it.

Files (HF repo jdh-algo/JoyVASA, under the weights root as `python -m core weights download joyvasa` puts them):
`JoyVASA/motion_generator/motion_generator_hubert_chinese.pt` (a pickle holding `argparse.Namespace` and
`pathlib.PosixPath`; read with `weights_only=True` and exactly those two classes allowed) and
`JoyVASA/motion_template/motion_template.pkl` (a plain pickle of NumPy arrays; read with an unpickler that allows
only NumPy's array reconstruction). The checkpoint carries its own HuBERT encoder, so no other model is needed.

Generation (as JoyVASA's wrapper does it): 1,280 zero samples in front; windows of N frames, each conditioned on
the previous window's last 10 motion frames and audio features (learned start tokens for the first window);
DDPM ancestral sampling of x0 with classifier-free guidance on the audio; denormalisation by the template; an
EMA (alpha 0.01) on scale, translation and angles. Our 70-d rows are that motion relative to the stream's first
frame (exp and translation differences, angle differences in degrees, relative scale), as JoyVASA's renderer
uses it relative to its first driving frame (its rotation composition R_i R_0^T R_s becomes an angle sum here).

Live use (`JoyVASAMotionSource` defaults): windows of N = 25 frames (MotionSettings.window), 10 strided ancestral
steps (MotionSettings.steps), guidance MotionSettings.cfg_scale, and 1 s of extra audio in front of each window
for HuBERT only. Why N = 25: latency is (N - 1) x 40 ms + compute; on this 2-core CPU a window costs ~0.38 s
(N = 10: 0.26 s for 0.4 s of audio, too little CPU left for the renderer; N = 50: 2 s of waiting). With the
pre-fix positional encoding the network has no notion of position, so a shorter window is not out of
distribution for it; each window still sees the previous 10 frames. `JoyVASAConfig.native()` is JoyVASA's own
setting (100 frames, 50 steps, guidance 2.8, no audio context) and reproduces its offline output exactly.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core import layout
from core.liveportrait.loader import CheckpointError
from core.motion.joyvasa_audio import build_hubert, encode_window, hubert_config
from core.motion.joyvasa_denoiser import JoyVASADenoiser, JoyVASADenoiserConfig, sinusoid_table
from core.motion.source import MotionSettings
from core.timebase import FPS, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME

CHECKPOINT_REL = "JoyVASA/motion_generator/motion_generator_hubert_chinese.pt"
TEMPLATE_REL = "JoyVASA/motion_template/motion_template.pkl"
FIX = "Run `python -m core weights download joyvasa` to fetch the published files again."
LEADING_SILENCE = 1280  # JoyVASA's wrapper puts 2 frames of silence in front ...
TRAILING_SILENCE = SAMPLES_PER_FRAME  # ... and 1 behind
EMA_ALPHA = 0.01
HUBERT_AUDIO_MODELS = ("hubert_zh", "hubert_zh_ori")
ARCH_FIELDS = ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "audio_model", "n_diff_steps")
WEIGHT_NORM_ALIASES = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}

Noise = Callable[[tuple[int, ...]], torch.Tensor]


class JoyVASACheckpointError(CheckpointError, ValueError):
    """The JoyVASA checkpoint or template is not the published file (wrong, damaged, truncated or unsafe)."""


# ---------------------------------------------------------------------------------------------------- files
def _refuse(path: Path, problem: str) -> JoyVASACheckpointError:
    return JoyVASACheckpointError(f"{path}: {problem}. {FIX}")


def read_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True; only argparse.Namespace and pathlib.PosixPath are allowed extra."""
    path = Path(path)
    if not path.is_file():
        from core.weights import MissingWeightsError

        raise MissingWeightsError(f"Missing JoyVASA checkpoint {path}. {FIX}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace, pathlib.PosixPath]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = found.group(1) if found else str(exc).strip().splitlines()[0]
        raise _refuse(path, f"refused to unpickle {what}: the file may hold only tensors, an argparse.Namespace "
                            "and a pathlib.PosixPath (it is not the published checkpoint)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise _refuse(path, f"not a readable PyTorch checkpoint, probably truncated or damaged ({exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "args" not in ckpt:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise _refuse(path, f"not a JoyVASA motion generator (expected a dict with 'args' and 'model', got {found})")
    if not isinstance(ckpt["args"], argparse.Namespace) or not isinstance(ckpt["model"], dict):
        raise _refuse(path, "not a JoyVASA motion generator ('args' must be a Namespace, 'model' a state dict)")
    return ckpt


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts of NumPy arrays and refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a motion template")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # NumPy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


@dataclass
class MotionTemplate:
    """The statistics JoyVASA's 73-d motion vector was normalised with (only these are read at inference)."""

    mean_exp: np.ndarray
    std_exp: np.ndarray
    lo: np.ndarray  # (7,) minimum of scale, tx, ty, tz, pitch, yaw, roll
    hi: np.ndarray

    POSE_FIELDS = ("scale", "t", "pitch", "yaw", "roll")

    @classmethod
    def load(cls, path: str | Path) -> MotionTemplate:
        path = Path(path)
        if not path.is_file():
            from core.weights import MissingWeightsError

            raise MissingWeightsError(f"Missing JoyVASA motion template {path}. {FIX}")
        try:
            with open(path, "rb") as f:
                data = _NumpyOnlyUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise _refuse(path, f"refused to unpickle the motion template ({exc})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise _refuse(path, f"not a readable motion template, probably truncated ({exc})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict, path: str | Path = "motion template") -> MotionTemplate:
        def get(key: str, n: int) -> np.ndarray:
            v = data.get(key) if isinstance(data, dict) else None
            if not isinstance(v, np.ndarray) or v.shape != (n,):
                raise _refuse(Path(path), f"motion template entry {key!r} missing or not of shape ({n},)")
            return v.astype(np.float32)

        sizes = {"scale": 1, "t": 3, "pitch": 1, "yaw": 1, "roll": 1}
        lo = np.concatenate([get(f"min_{k}", n) for k, n in sizes.items()])
        hi = np.concatenate([get(f"max_{k}", n) for k, n in sizes.items()])
        return cls(get("mean_exp", 63), get("std_exp", 63), lo, hi)

    @classmethod
    def synthetic(cls) -> MotionTemplate:
        """Plausible ranges for development without the published file."""
        return cls(np.zeros(63, np.float32), np.full(63, 0.01, np.float32),
                   np.array([0.85, -0.09, -0.11, -0.03, -24, -38, -19], np.float32),
                   np.array([1.55, 0.07, 0.05, 0.02, 21, 41, 23], np.float32))


# ---------------------------------------------------------------------------------------------------- model
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
            raise _refuse(path, f"its args lack {missing}")
        args = cls(**{k: getattr(ns, k) for k in ARCH_FIELDS})
        if args.audio_model not in HUBERT_AUDIO_MODELS:
            raise _refuse(path, f"audio_model {args.audio_model!r} is not supported (only the Chinese-HuBERT "
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


# ---------------------------------------------------------------------------------------------------- loading
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
        raise _refuse(path, "does not match JoyVASA's motion generator (" + "; ".join(problems) + ")")
    model.load_state_dict(renamed, strict=True)
    # JoyVASA's loader drops the file's step table and keeps the one its constructor computes
    den = model.denoising_net
    den.TE.pe.copy_(sinusoid_table(den.TE.pe.shape[1], den.TE.pe.shape[2]))


def resolve_files(root: str | Path) -> tuple[Path, Path]:
    """The checkpoint and template under a weights root (or under the `JoyVASA` folder itself)."""
    root = Path(root)
    for base in (root, root.parent):
        ckpt, tpl = base / CHECKPOINT_REL, base / TEMPLATE_REL
        if ckpt.is_file() or tpl.is_file():
            return ckpt, tpl
    return root / CHECKPOINT_REL, root / TEMPLATE_REL


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


# ---------------------------------------------------------------------------------------------------- motion
def postprocess(coef: np.ndarray, template: MotionTemplate, smooth: float | None = EMA_ALPHA,
                state: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(T, 73) coefficients -> denormalised motion (raw_* and, with `smooth`, EMA-smoothed smooth_*).

    `state` carries the EMA across calls (streaming); returns (arrays, new state)."""
    from core.liveportrait.keypoints import rotation_matrix

    coef = np.asarray(coef, np.float32)
    exp = coef[:, :63] * template.std_exp + template.mean_exp
    pose = coef[:, 63:70] * (template.hi - template.lo) + template.lo  # scale, tx, ty, tz, pitch, yaw, roll

    def rot(p: np.ndarray) -> np.ndarray:
        angles = torch.from_numpy(np.ascontiguousarray(p[:, 4:7]))
        return rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()

    out = {"raw_exp": exp.reshape(-1, 21, 3), "raw_scale": pose[:, 0:1], "raw_t": pose[:, 1:4],
           "raw_pitch": pose[:, 4:5], "raw_yaw": pose[:, 5:6], "raw_roll": pose[:, 6:7], "raw_R": rot(pose)}
    if smooth is None:
        return out, state
    smoothed = np.empty_like(pose)
    a, b = np.float32(smooth), np.float32(1 - smooth)
    for k in range(len(pose)):
        state = pose[k].copy() if state is None else a * pose[k] + b * state
        smoothed[k] = state
    out.update({"smooth_scale": smoothed[:, 0:1], "smooth_t": smoothed[:, 1:4], "smooth_pitch": smoothed[:, 4:5],
                "smooth_yaw": smoothed[:, 5:6], "smooth_roll": smoothed[:, 6:7], "smooth_R": rot(smoothed)})
    return out, state


def absolute_rows(post: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 70): exp 63, pitch/yaw/roll, t 3, scale (smoothed pose when present), absolute."""
    p = "smooth_" if "smooth_scale" in post else "raw_"
    return np.concatenate((post["raw_exp"].reshape(len(post["raw_exp"]), -1), post[p + "pitch"], post[p + "yaw"],
                           post[p + "roll"], post[p + "t"], post[p + "scale"]), axis=1).astype(np.float32)


def relative_rows(absolute: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Absolute rows -> our layout relative to `reference` (the first frame)."""
    rel = absolute - reference
    rel[:, layout.SCALE] = absolute[:, layout.SCALE] / reference[layout.SCALE] - 1
    return rel


@dataclass
class JoyVASAConfig:
    """Live defaults: 25-frame (1 s) windows, 10 strided sampling steps (MotionSettings.window / steps override);
    `native()` is JoyVASA's own: 100-frame windows, 50 steps, guidance 2.8, no audio context."""

    window: int | None = None  # None: settings.window
    steps: int | None = None  # None: settings.steps
    cfg_scale: float | None = None  # None: settings.cfg_scale
    audio_context_frames: int = 25  # extra audio in front of a window, for HuBERT only (left context)
    smooth: float | None = EMA_ALPHA
    positional_encoding: str = "prefix"

    @classmethod
    def native(cls) -> JoyVASAConfig:
        return cls(window=100, steps=50, cfg_scale=2.8, audio_context_frames=0)


@dataclass
class _Stream:
    samples: np.ndarray = field(default_factory=lambda: np.zeros(LEADING_SILENCE, np.float32))
    start: int = 0  # sample index (in the padded stream) of samples[0]
    window_start: int = 0  # padded-stream frame where the next window begins
    to_drop: int = LEADING_SILENCE // SAMPLES_PER_FRAME
    emitted: int = 0
    total_in: int = 0


class JoyVASAMotionSource:
    """Streaming JoyVASA: windows of N frames, each conditioned on the previous 10 generated frames."""

    name = "joyvasa"

    def __init__(self, joyvasa: JoyVASA, settings: MotionSettings | None = None,
                 config: JoyVASAConfig | None = None, device: str | torch.device = "cpu",
                 noise: Noise | None = None) -> None:
        self.jv = joyvasa
        self.model = joyvasa.model.to(device).eval()
        self.device = torch.device(device)
        self.settings = settings or MotionSettings()
        self.config = config or JoyVASAConfig()
        self._noise_override = noise
        self.window_ms: list[float] = []  # compute time of each window
        self.reset(None)

    @classmethod
    def create(cls, weights_root: str | Path | None = None, synthetic: str | None = None,
               settings: MotionSettings | None = None, device: str = "cpu", native: bool = False,
               positional_encoding: str = "prefix") -> JoyVASAMotionSource:
        """From the installed published files; a tiny random stand-in when `synthetic` is given and no JoyVASA
        files are installed (so installed stand-in checkpoints, e.g. the parity kit's, are used end to end)."""
        from core.weights import WeightsRegistry

        config = JoyVASAConfig.native() if native else JoyVASAConfig()
        config.positional_encoding = positional_encoding
        if synthetic is not None and not WeightsRegistry(weights_root).installed("joyvasa"):
            jv = JoyVASA(JoyVASAModel.synthetic(positional_encoding=positional_encoding), MotionTemplate.synthetic())
        else:
            jv = load_joyvasa(WeightsRegistry(weights_root).root, device, positional_encoding)
        return cls(jv, settings, config, device)

    # ------------------------------------------------------------------ settings
    @property
    def window(self) -> int:
        n = self.config.window or self.settings.window
        return int(min(max(n, 1), self.model.args.n_motions))

    @property
    def steps(self) -> int:
        return int(min(max(self.config.steps or self.settings.steps, 1), self.model.args.n_diff_steps))

    @property
    def cfg_scale(self) -> float:
        return float(self.config.cfg_scale if self.config.cfg_scale is not None else self.settings.cfg_scale)

    # ------------------------------------------------------------------ protocol
    def reset(self, portrait: object | None = None) -> None:
        a = self.model.args
        self._s = _Stream()
        gen = torch.Generator().manual_seed(self.settings.seed)
        self._noise = self._noise_override or torch_noise(gen)
        self._x_T = self._noise((1, a.n_motions, a.motion_feat_dim)).to(self.device)
        self._prev_motion = self.model.start_motion_feat.detach()
        self._prev_audio = self.model.start_audio_feat.detach()
        self._ema: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self.last_aux: dict[str, np.ndarray] = {}

    def configure(self, settings: MotionSettings) -> None:
        self.settings = settings

    def latency_ms(self) -> float:
        """A window's first frame waits for the other N - 1 frames; no audio beyond the window is used."""
        return (self.window - 1) * FRAME_MS

    def push_audio(self, samples: np.ndarray) -> None:
        if len(samples):
            x = np.asarray(samples, np.float32).reshape(-1)
            self._s.samples = np.concatenate((self._s.samples, x))
            self._s.total_in += len(x)

    def pull(self) -> np.ndarray:
        rows = []
        n = self.window
        while self._available_frames() >= n:
            rows.append(self._run_window(n))
        return self._finish(rows)

    def flush(self) -> np.ndarray:
        s = self._s
        wanted = -(-s.total_in // SAMPLES_PER_FRAME)  # frames the stream owes in all
        rows = []
        while s.emitted + sum(len(r) for r in rows) - s.to_drop < wanted:
            n = self.window
            short = n - self._available_frames()
            if short > 0:  # zero-pad the last window, as JoyVASA's wrapper does
                s.samples = np.concatenate((s.samples, np.zeros(short * SAMPLES_PER_FRAME, np.float32)))
            rows.append(self._run_window(n))
        before = s.emitted
        out = self._finish(rows)[: max(0, wanted - before)]
        s.emitted = before + len(out)
        return out

    # ------------------------------------------------------------------ internals
    def _available_frames(self) -> int:
        s = self._s
        return (s.start + len(s.samples)) // SAMPLES_PER_FRAME - s.window_start

    @torch.inference_mode()
    def _run_window(self, n: int) -> np.ndarray:
        t0 = time.perf_counter()
        s, a = self._s, self.model.args
        ctx = min(self.config.audio_context_frames, s.window_start)
        lo = (s.window_start - ctx) * SAMPLES_PER_FRAME - s.start
        hi = (s.window_start + n) * SAMPLES_PER_FRAME - s.start
        wave = torch.from_numpy(s.samples[lo:hi]).to(self.device)[None]
        audio = self.model.audio_features(wave)[:, ctx:]
        x_T = self._x_T[:, :n]
        motion = self.model.sample(audio, self._prev_motion, self._prev_audio, x_T, self._noise, self.cfg_scale,
                                   self.steps)
        c = a.n_prev_motions
        self._prev_motion = torch.cat((self._prev_motion, motion), 1)[:, -c:]
        self._prev_audio = torch.cat((self._prev_audio, audio), 1)[:, -c:]
        s.window_start += n
        keep_from = (s.window_start - self.config.audio_context_frames) * SAMPLES_PER_FRAME - s.start
        if keep_from > 0:
            s.samples = s.samples[keep_from:]
            s.start += keep_from
        post, self._ema = postprocess(motion[0].float().cpu().numpy(), self.jv.template, self.config.smooth,
                                      self._ema)
        rows = absolute_rows(post)
        if self._reference is None:
            self._reference = rows[0].copy()
        self.window_ms.append((time.perf_counter() - t0) * 1000)
        return relative_rows(rows, self._reference)

    def _finish(self, windows: list[np.ndarray]) -> np.ndarray:
        if not windows:
            return np.zeros((0, layout.MOTION_DIM), np.float32)
        rows = np.concatenate(windows)
        s = self._s
        drop = min(s.to_drop, len(rows))
        rows, s.to_drop = rows[drop:], s.to_drop - drop
        s.emitted += len(rows)
        return layout.apply_gains(rows, self.settings.expression_gain, self.settings.head_gain)


__all__ = ["JoyVASA", "JoyVASAArgs", "JoyVASACheckpointError", "JoyVASAConfig", "JoyVASAModel",
           "JoyVASAMotionSource", "MotionTemplate", "load_joyvasa", "postprocess", "read_checkpoint"]
