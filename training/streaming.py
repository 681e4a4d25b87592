"""What a training step of the causal streaming DiT adds to the windowed one (training/train.py calls it).

The sampler draws windows of [C context ; R rollout ; K chunk ; L look-ahead] frames (R = K = MAX_CHUNK), and one
step trains the call the live source makes: C context frames, K noisy frames, the audio of C + K + L frames.

Living on its own output (so that minutes of streaming neither drift nor freeze), two ways, per sample:
  * self-generated context (`self_context` of the samples): the model, without gradients, generates the R frames
    after the true context in `SELF_STEPS` DDIM steps, as it would live; the chunk is then trained after a context
    whose last R frames are its own, so it learns to pull its own errors back towards the data;
  * noised context (every sample): Gaussian noise of a random std in [0, `context_noise`] on the context.
Guidance folded into one pass (model-guidance training): a model with `guidance_embed` gets a guidance scale w,
drawn in [1, `guidance_max`] for half the conditioned samples once `guidance_start` of the steps have passed, and
the target x0 + (w - 1) (c - u), with c and u its own conditional and unconditional predictions (no gradient): at
the optimum it outputs u + w (c - u), classifier-free guidance with one forward pass instead of two.
"""

from __future__ import annotations

import numpy as np
import torch

from core.motion.dit import MAX_CHUNK
from core.motion.rollout import sample_chunk

SELF_STEPS = 2  # DDIM steps of the self-generated context (cheap; the live source uses more)


def window_length(lookahead: int) -> int:
    """Frames after the context a streaming batch needs (rollout + chunk + look-ahead)."""
    return 2 * MAX_CHUNK + lookahead


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The step's own draws (context noise, rollout noise, guidance scales): resumed runs repeat them."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(np.random.SeedSequence([seed, step, 11]).generate_state(1)[0]))
    return g


def inputs(model, net, diffusion, mb, cfg, step: int, train: bool):
    """-> (x_t, t, context, audio, drop, guidance, target): the streaming call's inputs and what it should output.
    `train` False (validation): true context, no noise on it, no guidance."""
    c, k, r, lookahead = mb.context.shape[1], MAX_CHUNK, MAX_CHUNK, model.config.lookahead
    b, device = mb.context.shape[0], mb.context.device
    target = mb.target[:, r: r + k]
    audio = mb.audio[:, r: r + c + k + lookahead]
    noise = mb.noise[:, r: r + k]
    context = torch.cat((mb.context, mb.target[:, :r]), 1)[:, -c:]
    guidance = None
    if not train:
        x_t = diffusion.q_sample(target, mb.t, noise)
        return x_t, mb.t, context, audio, torch.zeros_like(mb.drop), guidance, target
    g = step_generator(cfg.seed, step, device)
    if cfg.self_context > 0:
        was_training = model.training
        model.eval()
        x_T = torch.randn((b, r, target.shape[2]), generator=g).to(device)
        own = sample_chunk(model, diffusion, mb.context, mb.audio[:, : c + r + lookahead], r, SELF_STEPS, 1.0, x_T)
        model.train(was_training)
        own_context = torch.cat((mb.context, own), 1)[:, -c:]
        use_own = (torch.rand(b, generator=g) < cfg.self_context).to(device)
        context = torch.where(use_own[:, None, None], own_context, context)
    if cfg.context_noise > 0:
        sigma = torch.rand(b, 1, 1, generator=g).to(device) * cfg.context_noise
        context = context + sigma * torch.randn(context.shape, generator=g).to(device)
    x_t = diffusion.q_sample(target, mb.t, noise)
    if getattr(model.config, "guidance_embed", False):
        w = 1 + torch.rand(b, generator=g) * (cfg.guidance_max - 1)
        active = (torch.rand(b, generator=g) < 0.5) & (step >= cfg.guidance_start * cfg.steps)
        w = torch.where(active.to(device) & ~mb.drop, w.to(device), torch.ones(b, device=device))
        guidance = w
        if bool((w > 1).any()):
            with torch.no_grad():
                ones = torch.ones(2 * b, device=device)
                both = net(torch.cat((x_t, x_t)), torch.cat((mb.t, mb.t)), torch.cat((context, context)),
                           torch.cat((audio, audio)), drop_audio=torch.cat((torch.ones_like(mb.drop),
                                                                            torch.zeros_like(mb.drop))),
                           guidance=ones)
                u, cond = both[:b].float(), both[b:].float()
            target = target + (w - 1)[:, None, None] * (cond - u)
    return x_t, mb.t, context, audio, mb.drop, guidance, target
