"""Diffusion schedule and samplers against analytic answers."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from core.motion.diffusion import (
    CosineSchedule,
    conditioned,
    guided,
    predict_x0,
    sample_ancestral,
    sample_ddim,
    sinusoid_table,
    strided_steps,
)

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


def test_striding_is_exact_and_matches_both_former_rules_except_at_ties():
    """One striding function replaced two (DiT: Python round of a float; JoyVASA: np.round of np.linspace).
    It spaces steps exactly and rounds ties up; the former rules agree with it except where floating point
    turned an exact .5 into .4999... (listed), so the live defaults (10 of 50 steps) are unchanged."""
    def exact(total, k):
        return [int(1 + Fraction((total - 1) * i, k - 1) + Fraction(1, 2)) for i in range(k - 1, -1, -1)]

    def joyvasa_before(total, k):
        return [int(t) for t in np.unique(np.round(np.linspace(1, total, k)).astype(int))[::-1]]

    def dit_before(total, k):
        return sorted({round(1 + (total - 1) * i / max(k - 1, 1)) for i in range(k)}, reverse=True)

    changed = []
    for total in (10, 50, 1000):
        for k in range(2, total + 1, 1 if total < 100 else 37):
            steps = strided_steps(total, k)
            assert steps == exact(total, k) and len(steps) == k and steps[0] == total and steps[-1] == 1
            assert all(a > b for a, b in zip(steps, steps[1:]))
            for before in (joyvasa_before(total, k), dit_before(total, k)):
                for i, (a, b) in enumerate(zip(steps[::-1], before[::-1])):
                    if a != b:  # only at an exact tie, where the float fell just below .5
                        assert Fraction((total - 1) * i, k - 1) % 1 == Fraction(1, 2) and a == b + 1
                        changed.append((total, k))
    live = [50, 45, 39, 34, 28, 23, 17, 12, 6, 1]  # 10 of 50 steps, the live default
    assert strided_steps(50, 10) == joyvasa_before(50, 10) == dit_before(50, 10) == live
    assert (50, 23) in changed and 25 in joyvasa_before(50, 23) and 26 in strided_steps(50, 23)
    assert strided_steps(50, 1) == [50] and strided_steps(50, 80) == list(range(50, 0, -1))


def test_one_schedule_is_joyvasas(joyvasa_vectors):
    """The toolkit's cosine schedule is the one JoyVASA's checkpoint stores (to float32 precision); the
    checkpoint's own float32 buffers are still what JoyVASA samples with (bitwise parity)."""
    s = CosineSchedule(50)
    v = joyvasa_vectors
    for name, ours in (("betas", s.betas), ("alphas", s.alphas), ("alpha_bars", s.alpha_bar),
                       ("sigmas_inflex", s.sigmas)):
        assert np.allclose(ours.numpy(), v[f"schedule/{name}"], rtol=1e-5, atol=1e-6), name
    stored = CosineSchedule.from_buffers(*(torch.from_numpy(v[f"schedule/{k}"]) for k in
                                          ("betas", "alphas", "alpha_bars", "sigmas_inflex")))
    c0, c1, sigma = stored.posterior(17, 16)
    assert c0.dtype == torch.float32 and sigma == torch.from_numpy(v["schedule/sigmas_inflex"])[17]
    assert abs(float(c0) - float(s.posterior(17, 16)[0])) < 1e-5


def test_sinusoid_table_is_the_one_both_networks_use():
    from core.motion.dit import DiTConfig, MotionDiT
    from core.motion.joyvasa.denoiser import JoyVASADenoiser, JoyVASADenoiserConfig

    table = sinusoid_table(7, 6)
    assert torch.equal(table[:, 0], torch.sin(torch.arange(7.0)))
    assert torch.equal(table[:, 1], torch.cos(torch.arange(7.0)))
    dit = MotionDiT(DiTConfig.small(audio_dim=8))
    assert torch.equal(dit.positions, sinusoid_table(128, 64))
    den = JoyVASADenoiser(JoyVASADenoiserConfig(feature_dim=32, n_layers=1, n_heads=2))
    assert torch.equal(den.TE.pe[0], sinusoid_table(501, 32))


def test_predict_x0_and_conditioning_under_guidance():
    """`conditioned` repeats a window's conditioning when guidance doubles the batch; every call goes through
    `predict_x0` with the model's one signature."""
    seen = []

    class Model(torch.nn.Module):
        def forward(self, x_t, t, context, audio, drop_audio=None):
            seen.append((x_t.shape[0], context.shape[0], audio.shape[0], drop_audio.tolist()))
            keep = (~drop_audio).float().view(-1, 1, 1)
            return x_t + context.mean((1, 2)).view(-1, 1, 1) + audio.mean((1, 2)).view(-1, 1, 1) * keep

    ctx, audio, x = torch.ones(2, 3, 4), torch.full((2, 5, 6), 2.0), torch.zeros(2, 2, 4)
    out = guided(conditioned(Model(), ctx, audio), 2.0)(x, torch.full((2,), 9))
    assert seen[-1] == (4, 4, 4, [True, True, False, False])
    assert torch.allclose(out, torch.full_like(x, 1.0 + 2.0 * (3.0 - 1.0)))  # u = 1 (null audio), c = 3
    assert torch.equal(predict_x0(Model(), x, torch.full((2,), 9), ctx, audio, torch.zeros(2, dtype=torch.bool)),
                       x + 3.0)
