"""Rolling a streaming DiT forward: one call = k new frames from the last C frames and the audio up to f + L.

`sample_chunk` is the one call (the live source, evaluation, distillation and the rollout tests all use it);
`rollout` runs it over a whole clip whose features are all known (offline evaluation, training data checks).
Sampling is the strided DDIM of `core.motion.diffusion` with the model's cheapest guidance (`denoiser`).
"""

from __future__ import annotations

import torch

from core.motion.diffusion import CosineSchedule, denoiser, sample_ddim


@torch.no_grad()
def sample_chunk(model: torch.nn.Module, schedule: CosineSchedule, context: torch.Tensor, audio: torch.Tensor,
                 k: int, steps: int, cfg_scale: float, x_T: torch.Tensor, eta: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """context (B, C, M) normalised motion, audio (B, C + k + L, A), x_T (B, k, M) starting noise
    -> (B, k, M) normalised motion of the next k frames."""
    denoise = denoiser(model, context, audio, cfg_scale)
    return sample_ddim(denoise, schedule, tuple(x_T.shape), k=steps, eta=eta, generator=generator,
                       device=context.device, x_T=x_T)


@torch.no_grad()
def rollout(model: torch.nn.Module, schedule: CosineSchedule, start: torch.Tensor, audio: torch.Tensor,
            k: int, steps: int, cfg_scale: float, generator: torch.Generator, pad: torch.Tensor | None = None,
            eta: float = 0.0) -> torch.Tensor:
    """start (C, M) the first C frames (given), audio (T, A) features of all T frames -> (T, M) normalised motion:
    the given C frames, then chunks of k generated frames, each conditioned on the previous C generated ones.
    Audio after the clip's end (the last frames' look-ahead) is `pad` (A,) (default: the last frame's)."""
    c, lookahead = start.shape[0], model.config.lookahead
    total, dim = audio.shape[0], start.shape[1]
    tail = (pad if pad is not None else audio[-1]).to(audio).expand(lookahead + k, -1)
    audio = torch.cat((audio, tail))
    out = torch.empty(total, dim, device=start.device)
    out[:c] = start
    f = c
    while f < total:
        n = min(k, total - f)
        x_T = torch.randn((1, n, dim), generator=generator, device=generator.device).to(start.device)
        chunk = sample_chunk(model, schedule, out[f - c: f][None], audio[f - c: f + n + lookahead][None], n,
                             steps, cfg_scale, x_T, eta, generator)
        out[f: f + n] = chunk[0]
        f += n
    return out
