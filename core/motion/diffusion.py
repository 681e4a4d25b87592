"""The one diffusion toolkit every motion model uses (the DiT, JoyVASA, training and evaluation).

* `sinusoid_table`: the sin/cos table of step and frame positions (both networks, bitwise JoyVASA's).
* `CosineSchedule`: the cosine schedule (s = 0.008, betas clipped to [1e-4, 0.999]), computed in float64, or a
  model's own stored buffers (`from_buffers`: JoyVASA's checkpoint carries its schedule as float32 tensors, and its
  numbers are reproduced only with those); `posterior(t, s)` gives the ancestral step's coefficients.
* `strided_steps`: which steps a k-step sampler visits (exact rational spacing, ties rounded up).
* `predict_x0`: the one call of a denoising network, `model(x_t, t, context, audio, drop_audio) -> x0 (B, N, M)`;
  `conditioned` binds a window's conditioning to it, `guided` adds classifier-free guidance on the audio (two
  forward passes per step), `folded` asks a guidance-embedding model for the guided prediction in one pass, and
  `denoiser` picks the one a model supports.
* `sample_ancestral`: DDPM ancestral sampling over every step, or k strided steps (the posterior over the gap).
* `sample_ddim`: a strided schedule of k steps (the reference ran the *last* k steps of a 50-step schedule from
  pure noise, which is not a sampler of the model's distribution); `eta` = 0 is deterministic DDIM, and with all
  steps eta = 1 reproduces the ancestral sampler.
Both samplers take a `denoise(x_t, t) -> x0` callable, so guidance lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[tuple[int, ...]], torch.Tensor]  # shape -> fresh N(0, 1) draws


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) float32: sin on even channels, cos on odd, frequencies 10000^(-2i/dim) (JoyVASA's `pe`
    buffers are this table bitwise, with a leading batch axis)."""
    pos = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class CosineSchedule:
    """alpha_bar(t) = cos(((t / n) + s) / (1 + s) pi / 2)^2 / alpha_bar(0); index 0 is clean data.

    `betas`, `alphas` (1 - beta), `alpha_bar` and `sigmas` (the posterior std of the step t -> t - 1) are
    tensors of one dtype: float64 from the formula, or whatever a checkpoint stored (`from_buffers`)."""

    def __init__(self, steps: int = 50, s: float = 0.008) -> None:
        self.steps = steps
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(1e-4, 0.999)
        self.betas = torch.cat((torch.zeros(1, dtype=torch.float64), betas))
        self.alphas = 1 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)  # alpha_bar[0] = 1
        self.sigmas = torch.zeros_like(self.betas)
        self.sigmas[1:] = torch.sqrt((1 - self.alpha_bar[:-1]) / (1 - self.alpha_bar[1:]) * self.betas[1:])

    @classmethod
    def from_buffers(cls, betas: torch.Tensor, alphas: torch.Tensor, alpha_bar: torch.Tensor,
                     sigmas: torch.Tensor) -> CosineSchedule:
        """A model's stored schedule, used as stored (shared tensors, no copy)."""
        schedule = cls.__new__(cls)
        schedule.steps = len(betas) - 1
        schedule.betas, schedule.alphas, schedule.alpha_bar, schedule.sigmas = betas, alphas, alpha_bar, sigmas
        return schedule

    def buffers(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The schedule under JoyVASA's checkpoint names (for a stand-in model of its layout)."""
        return {"betas": self.betas.to(dtype), "alphas": self.alphas.to(dtype), "alpha_bars": self.alpha_bar.to(dtype),
                "sigmas_flex": self.betas.sqrt().to(dtype), "sigmas_inflex": self.sigmas.to(dtype)}

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, t (B,) in 1..steps."""
        ab = self.alpha_bar.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def posterior(self, t: int, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_s = c0 x_t + c1 x0 + sigma z: the posterior q(x_s | x_t, x0) for s < t, in the schedule's dtype.
        For s = t - 1 the stored alpha_t and sigma_t are used (JoyVASA's official step, bitwise)."""
        ab_t, ab_s = self.alpha_bar[t], self.alpha_bar[s]
        if s == t - 1:
            alpha, sigma = self.alphas[t], self.sigmas[t]
        else:  # a strided step over several schedule steps
            alpha = ab_t / ab_s
            sigma = torch.sqrt((1 - ab_s) / (1 - ab_t) * (1 - alpha))
        c0 = (1 - ab_s) * torch.sqrt(alpha) / (1 - ab_t)
        c1 = (1 - alpha) * torch.sqrt(ab_s) / (1 - ab_t)
        return c0, c1, sigma


def strided_steps(total: int, k: int) -> list[int]:
    """k steps spread evenly over total..1, always starting at `total` (pure noise) and ending at 1.

    Step i is 1 + (total - 1) i / (k - 1) rounded half up, in exact integer arithmetic: floating-point spacing
    (what `np.linspace` gives) rounds some ties down (50 steps, k = 23: 25.4999... -> 25, exactly 25.5 -> 26).
    k >= total visits every step."""
    k = max(1, min(k, total))
    if k == 1:
        return [total]
    return [1 + ((total - 1) * i * 2 + (k - 1)) // (2 * (k - 1)) for i in range(k - 1, -1, -1)]


def predict_x0(model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
               audio: torch.Tensor, drop_audio: torch.Tensor | None = None,
               guidance: torch.Tensor | None = None) -> torch.Tensor:
    """The one place a denoising network is called. x_t (B, N, M) noisy motion, t (B,) integer steps, context
    (B, C, M) clean previous motion, audio (B, C + N, A) features of the same frames (a streaming model: and of
    its look-ahead frames), drop_audio (B,) bool: the model's null audio instead of the window's, guidance (B,)
    float: the guidance scale a guidance-embedding model folds in -> x0 estimate (B, N, M)."""
    if guidance is None:
        return model(x_t, t, context, audio, drop_audio=drop_audio)
    return model(x_t, t, context, audio, drop_audio=drop_audio, guidance=guidance)


def conditioned(model: torch.nn.Module, context: torch.Tensor, audio: torch.Tensor
                ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """model_fn(x_t, t, drop) for `guided`: a window's conditioning (batch B), repeated when guidance doubles it."""

    def model_fn(x_t: torch.Tensor, t: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        k = x_t.shape[0] // context.shape[0]
        ctx, aud = (context, audio) if k == 1 else (context.repeat(k, 1, 1), audio.repeat(k, 1, 1))
        return predict_x0(model, x_t, t, ctx, aud, drop)

    return model_fn


def guided(model_fn: Callable[..., torch.Tensor], cfg_scale: float) -> Denoiser:
    """Classifier-free guidance: x0 = u + s (c - u) with one forward over a batch of 2B (unconditional half
    first, as JoyVASA runs it). s = 0 is the unconditional model, s = 1 the conditional one;
    model_fn(x_t, t, drop_audio) -> x0."""

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        if cfg_scale == 1.0:
            return model_fn(x_t, t, torch.zeros(b, dtype=torch.bool, device=x_t.device))
        if cfg_scale == 0.0:
            return model_fn(x_t, t, torch.ones(b, dtype=torch.bool, device=x_t.device))
        drop = torch.cat((torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool))).to(x_t.device)
        both = model_fn(torch.cat((x_t, x_t)), torch.cat((t, t)), drop)
        u, c = both[:b], both[b:]
        return u + cfg_scale * (c - u)

    return denoise


def folded(model: torch.nn.Module, context: torch.Tensor, audio: torch.Tensor, cfg_scale: float) -> Denoiser:
    """Guidance folded into the model: one forward pass per step with the scale as an input (a model whose
    config has `guidance_embed`, trained to output u + s (c - u) itself)."""
    scale = torch.full((context.shape[0],), float(cfg_scale), device=context.device)

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict_x0(model, x_t, t, context, audio, guidance=scale)

    return denoise


def denoiser(model: torch.nn.Module, context: torch.Tensor, audio: torch.Tensor, cfg_scale: float) -> Denoiser:
    """The cheapest guided denoiser a model supports: `folded` when it embeds the guidance scale, else `guided`."""
    if getattr(model.config, "guidance_embed", False):
        return folded(model, context, audio, cfg_scale)
    return guided(conditioned(model, context, audio), cfg_scale)


def generator_noise(generator: torch.Generator | None, device="cpu", dtype=torch.float32) -> Noise:
    """Noise drawn from a local generator (never the global RNG when one is given), moved to `device`."""
    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=generator.device if generator else device,
                           dtype=dtype).to(device)

    return draw


@torch.no_grad()
def sample_ancestral(denoise: Denoiser, schedule: CosineSchedule, shape: tuple[int, ...],
                     generator: torch.Generator | None = None, device="cpu", x_T: torch.Tensor | None = None,
                     k: int | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Ancestral sampling from x_T over every step (k None) or k strided steps; each step to s > 0 adds
    `noise(shape)` (default: draws from `generator`) scaled by the posterior std."""
    noise = noise or generator_noise(generator, device)
    x = x_T if x_T is not None else noise(shape)
    ts = strided_steps(schedule.steps, k or schedule.steps)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        x0 = denoise(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        c0, c1, sigma = schedule.posterior(t, s)
        x = c0.to(x.dtype) * x + c1.to(x.dtype) * x0
        if s > 0:
            x = x + sigma.to(x.dtype) * noise(tuple(x.shape)).to(x)
    return x


@torch.no_grad()
def sample_ddim(denoise: Denoiser, schedule: CosineSchedule, shape: tuple[int, ...], k: int, eta: float = 0.0,
                generator: torch.Generator | None = None, device="cpu", x_T: torch.Tensor | None = None):
    noise = generator_noise(generator, device)
    ab = schedule.alpha_bar
    steps = strided_steps(schedule.steps, k)
    x = x_T if x_T is not None else noise(shape)
    for i, t in enumerate(steps):
        s = steps[i + 1] if i + 1 < len(steps) else 0
        x0 = denoise(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
        if s == 0:
            return x0
        a_t, a_s = float(ab[t]), float(ab[s])
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * noise(shape).to(x.dtype)
    return x
