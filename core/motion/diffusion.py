"""Diffusion for motion: a cosine schedule, the forward noising used in training, and two samplers.

* `sample_ancestral`: DDPM ancestral sampling over every step (posterior mean and variance).
* `sample_ddim`: a strided schedule of k steps (the reference ran the *last* k steps of a 50-step schedule from
  pure noise, which is not a sampler of the model's distribution); `eta` = 0 is deterministic DDIM, and with all
  steps eta = 1 reproduces the ancestral sampler.
Both take a `denoise(x_t, t) -> x0` callable, so classifier-free guidance lives in one place (`guided`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CosineSchedule:
    def __init__(self, steps: int = 50, s: float = 0.008) -> None:
        self.steps = steps
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(1e-4, 0.999)
        self.betas = torch.cat((torch.zeros(1, dtype=torch.float64), betas))
        self.alpha_bar = torch.cumprod(1 - self.betas, 0)  # alpha_bar[0] = 1

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, t (B,) in 1..steps."""
        ab = self.alpha_bar.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def guided(model_fn: Callable[..., torch.Tensor], cfg_scale: float) -> Callable[..., torch.Tensor]:
    """Classifier-free guidance: x0 = u + s (c - u) with one forward over a batch of 2B.
    s = 0 is the unconditional model, s = 1 the conditional one; model_fn(x_t, t, drop_audio) -> x0."""

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


def _noise(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device if generator else device,
                       dtype=dtype).to(device)


@torch.no_grad()
def sample_ancestral(denoise: Denoiser, schedule: CosineSchedule, shape: tuple[int, ...],
                     generator: torch.Generator | None = None, device="cpu", x_T: torch.Tensor | None = None):
    ab, betas = schedule.alpha_bar, schedule.betas
    x = x_T if x_T is not None else _noise(shape, generator, device, torch.float32)
    for t in range(schedule.steps, 0, -1):
        x0 = denoise(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
        c0 = (1 - ab[t - 1]) * math.sqrt(1 - betas[t]) / (1 - ab[t])
        c1 = betas[t] * math.sqrt(ab[t - 1]) / (1 - ab[t])
        x = float(c0) * x + float(c1) * x0
        if t > 1:
            sigma = math.sqrt(float((1 - ab[t - 1]) / (1 - ab[t]) * betas[t]))
            x = x + sigma * _noise(shape, generator, device, x.dtype)
    return x


def strided_steps(total: int, k: int) -> list[int]:
    """k steps spread over total..1, always starting at `total` (pure noise) and ending at 1."""
    k = max(1, min(k, total))
    return sorted({round(1 + (total - 1) * i / max(k - 1, 1)) for i in range(k)}, reverse=True) if k > 1 else [total]


@torch.no_grad()
def sample_ddim(denoise: Denoiser, schedule: CosineSchedule, shape: tuple[int, ...], k: int, eta: float = 0.0,
                generator: torch.Generator | None = None, device="cpu", x_T: torch.Tensor | None = None):
    ab = schedule.alpha_bar
    steps = strided_steps(schedule.steps, k)
    x = x_T if x_T is not None else _noise(shape, generator, device, torch.float32)
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
            x = x + sigma * _noise(shape, generator, device, x.dtype)
    return x
