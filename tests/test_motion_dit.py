"""The DiT sees frame order, its audio alignment mask holds, and checkpoints round-trip or fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.motion.checkpoint import MotionCheckpointError, MotionStats, load_motion_model, save_motion_model
from core.motion.dit import DiTConfig, MotionDiT


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = MotionDiT(DiTConfig.small(audio_dim=16)).eval()
    with torch.no_grad():  # the output layer starts at zero for training; give it weights to see through
        m.out.weight.normal_(0, 0.1)
    return m


def inputs(n=12, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = 10
    return (torch.randn(b, n, 70, generator=g), torch.tensor([7, 30][:b]), torch.randn(b, c, 70, generator=g),
            torch.randn(b, c + n, 16, generator=g))


@torch.no_grad()
def test_frame_order_matters(model):
    x, t, ctx, audio = inputs()
    base = model(x, t, ctx, audio)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(base, model(x, t, ctx[:, perm], audio), atol=1e-4)
    pe = model.positions[:22]
    assert (pe[1:] - pe[:-1]).abs().sum(-1).min() > 0.1  # every frame gets its own position code


@torch.no_grad()
def test_any_window_length_and_alignment(model):
    for n in (1, 10, 25, 65):
        x, t, ctx, audio = inputs(n=n)
        assert model(x, t, ctx, audio).shape == (2, n, 70)
    x, t, ctx, audio = inputs(n=30)
    base = model(x, t, ctx, audio)
    far = audio.clone()
    far[:, 10 + 29] += 5.0  # the audio of the last frame only
    out = model(x, t, ctx, far)
    assert not torch.allclose(out, base, atol=1e-5)  # it matters ...
    # ... mostly to the frames near it: cross-attention is banded; self-attention spreads it further
    assert (out - base)[:, -3:].abs().mean() > (out - base)[:, :3].abs().mean()


@torch.no_grad()
def test_null_audio_for_guidance(model):
    x, t, ctx, audio = inputs()
    drop = torch.tensor([True, True])
    a = model(x, t, ctx, audio, drop)
    b = model(x, t, ctx, torch.randn_like(audio), drop)
    assert torch.allclose(a, b, atol=1e-6)  # dropped audio is ignored entirely


def test_checkpoint_round_trip_and_failures(model, tmp_path):
    stats = MotionStats.fit(np.random.default_rng(0).normal(0, 0.2, (500, 70)).astype(np.float32))
    path = save_motion_model(tmp_path / "m.safetensors", model, stats, {"model": "tiny", "lookahead_ms": 80})
    loaded = load_motion_model(path)
    x, t, ctx, audio = inputs()
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t, ctx, audio), model(x, t, ctx, audio))
    assert np.array_equal(loaded.stats.std, stats.std) and loaded.audio["lookahead_ms"] == 80
    with pytest.raises(MotionCheckpointError, match="not found"):
        load_motion_model(tmp_path / "nope.safetensors")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(MotionCheckpointError, match="damaged or truncated"):
        load_motion_model(truncated)
    # weights of another size under this config
    other = MotionDiT(DiTConfig.small(audio_dim=32))
    bad = save_motion_model(tmp_path / "b.safetensors", other, stats)
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(bad), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = json.dumps(DiTConfig.small(audio_dim=16).to_dict())
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(MotionCheckpointError, match="do not match its config"):
        load_motion_model(bad)
    torch.save({"x": torch.zeros(1)}, tmp_path / "p.safetensors")
    with pytest.raises(MotionCheckpointError):
        load_motion_model(tmp_path / "p.safetensors")
