"""Diffusion schedule and samplers against analytic answers."""

from __future__ import annotations

import math

import pytest
import torch

from core.motion.diffusion import CosineSchedule, guided, sample_ancestral, sample_ddim, strided_steps

MU, SIGMA = 1.5, 0.4


def gaussian_x0(schedule):
    """The exact E[x0 | x_t] for data ~ N(MU, SIGMA^2): an ideal denoiser for a toy target."""
    def denoise(x_t, t):
        ab = schedule.alpha_bar[t].float().view(-1, 1, 1)
        gain = ab.sqrt() * SIGMA**2 / (ab * SIGMA**2 + 1 - ab)
        return MU + gain * (x_t - ab.sqrt() * MU)
    return denoise


def test_schedule_is_cosine():
    s = CosineSchedule(50)
    assert s.alpha_bar[0] == 1 and s.alpha_bar[-1] < 1e-3
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_samples_have_the_target_moments(eta):
    """Right mean at any k; the variance converges to the target as steps are added (discretisation bias only)."""
    s = CosineSchedule(1000)
    errors = []
    for k in (10, 50, 200):
        x = sample_ddim(gaussian_x0(s), s, (4000, 1, 1), k=k, eta=eta, generator=torch.Generator().manual_seed(0))
        assert abs(x.mean().item() - MU) < 0.03
        errors.append(abs(x.std().item() - SIGMA))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.015


def test_ancestral_moments_and_equivalence_with_ddim_eta_1():
    s = CosineSchedule(1000)
    a = sample_ancestral(gaussian_x0(s), s, (4000, 1, 1), generator=torch.Generator().manual_seed(3))
    assert abs(a.mean().item() - MU) < 0.03 and abs(a.std().item() - SIGMA) < 0.015
    b = sample_ddim(gaussian_x0(s), s, (4000, 1, 1), k=1000, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-4)


def test_strided_schedule_starts_from_pure_noise():
    assert strided_steps(50, 5) == [50, 38, 26, 13, 1]
    assert strided_steps(50, 50) == list(range(50, 0, -1))
    assert strided_steps(50, 1) == [50]


def test_cfg_scales_0_and_1():
    calls = []

    def model_fn(x, t, drop):
        calls.append(drop.clone())
        return torch.where(drop.view(-1, 1, 1), torch.full_like(x, -1.0), torch.full_like(x, 2.0))

    x, t = torch.zeros(3, 4, 5), torch.full((3,), 7)
    assert torch.equal(guided(model_fn, 0.0)(x, t), torch.full_like(x, -1.0))  # unconditional
    assert torch.equal(guided(model_fn, 1.0)(x, t), torch.full_like(x, 2.0))  # conditional
    out = guided(model_fn, 2.5)(x, t)  # u + s (c - u) in one batch of 2B
    assert torch.allclose(out, torch.full_like(x, -1.0 + 2.5 * 3.0))
    assert calls[-1].tolist() == [True] * 3 + [False] * 3


def test_seeded_determinism():
    s = CosineSchedule(50)
    a = sample_ddim(gaussian_x0(s), s, (8, 2, 3), k=10, eta=1.0, generator=torch.Generator().manual_seed(5))
    b = sample_ddim(gaussian_x0(s), s, (8, 2, 3), k=10, eta=1.0, generator=torch.Generator().manual_seed(5))
    c = sample_ddim(gaussian_x0(s), s, (8, 2, 3), k=10, eta=1.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert math.isfinite(a.abs().max().item())
