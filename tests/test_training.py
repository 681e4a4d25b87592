"""Training loop: exact resume, 2-process DDP with gloo, synthetic data, finetune."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import WindowSampler, load_clips, motion_stats
from training.synth import SynthConfig, build
from training.train import TrainConfig, build_diffusion, train

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CPU is shared: one torch thread avoids oversubscription (about 10x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("synth"), SynthConfig(clips=4, val_clips=1, seed=3), progress=False)


def small_config(data: Path, out: Path, **kw) -> TrainConfig:
    values = dict(data=str(data), out=str(out), steps=8, batch_size=4, warmup=2, val_every=4, val_batches=1,
                  ckpt_every=100, log_every=1, lengths=(10, 25), diffusion_steps=20, export="none",
                  model=dict(layers=1, width=32, heads=2, dropout=0.1), threads=1)
    values.update(kw)
    return TrainConfig(**values)


def test_synth_mouth_follows_envelope_with_lag(synth_data):
    from training.evaluate import lag_correlation
    from training.mouth import mouth_opening

    for clip in load_clips(synth_data):
        curve = lag_correlation(mouth_opening(clip.motion), clip.envelope, 4)
        assert int(np.argmax(curve)) - 4 == 2 and curve.max() > 0.8


def test_batches_are_a_function_of_step_and_shard_by_rank(synth_data):
    clips = load_clips(synth_data, "train")
    mean, std = motion_stats(clips)
    full = WindowSampler(clips, mean, std, 4, seed=1).batch(7)
    halves = [WindowSampler(clips, mean, std, 2, seed=1, rank=r, world=2).batch(7) for r in range(2)]
    assert torch.equal(full.target[0::2], halves[0].target) and torch.equal(full.target[1::2], halves[1].target)
    assert torch.equal(WindowSampler(clips, mean, std, 4, seed=1).batch(7).audio, full.audio)
    assert not torch.equal(WindowSampler(clips, mean, std, 4, seed=1).batch(8).target[:, :10], full.target[:, :10])


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_losses(synth_data, tmp_path):
    torch.manual_seed(0)
    whole = train(small_config(synth_data, tmp_path / "a"))
    torch.manual_seed(0)
    first = train(small_config(synth_data, tmp_path / "b"), stop_after=4)  # "killed"
    torch.manual_seed(123)  # a fresh process: the global RNG state must come from the checkpoint
    rest = train(small_config(synth_data, tmp_path / "b"))
    assert len(whole["losses"]) == 8 and len(first["losses"]) == 4 and len(rest["losses"]) == 4
    np.testing.assert_allclose(first["losses"] + rest["losses"], whole["losses"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rest["val"], whole["val"][1:], atol=1e-6)
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 9))


def torchrun(args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training", "train", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the workers too, not only the launcher
        raise
    assert proc.returncode == 0, err[-3000:]
    return out


def logged_losses(run: Path) -> list[float]:
    return [float(r.split(",")[1]) for r in (run / "log.csv").read_text().splitlines()[1:]]


@pytest.mark.slow
def test_torchrun_two_processes_gloo_and_exact_resume(synth_data, tmp_path):
    common = ["--data", str(synth_data), "--steps", "4", "--batch-size", "2", "--warmup", "1",
              "--val-every", "100", "--ckpt-every", "100", "--log-every", "1", "--lengths", "10,25",
              "--diffusion-steps", "20", "--threads", "1",
              "--model", json.dumps(dict(layers=1, width=32, heads=2, dropout=0.1)), "--device", "cpu"]
    torchrun(["--out", str(tmp_path / "ddp"), *common])
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "ckpt-00000004.pt", weights_only=False)
    assert len(ckpt["rng"]) == 2  # both ranks' RNG states, so each resumes its own
    whole = logged_losses(tmp_path / "ddp")
    assert len(whole) == 4 and all(np.isfinite(whole))
    from core.motion.checkpoint import load_motion_model

    exported = load_motion_model(tmp_path / "ddp" / "model.safetensors")  # loads like any motion model
    assert exported.config.audio_dim == 16 and exported.config.width == 32

    torchrun(["--out", str(tmp_path / "cut"), "--stop-after", "2", "--export", "none", *common])  # "killed"
    torchrun(["--out", str(tmp_path / "cut"), "--export", "none", *common])  # resumed
    np.testing.assert_allclose(logged_losses(tmp_path / "cut"), whole, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_finetune_from_exported_model_with_frozen_layers(synth_data, tmp_path):
    from core.motion.checkpoint import load_motion_model

    base = small_config(synth_data, tmp_path / "base", steps=3, export="")
    train(base)
    base_file = tmp_path / "base" / "model.safetensors"
    before = load_motion_model(base_file)
    ft = small_config(synth_data, tmp_path / "ft", steps=3, export="", lr=1e-3, warmup=1, init_from=str(base_file),
                      freeze=("decoder.layers.0.",), model={})
    result = train(ft)
    after = load_motion_model(tmp_path / "ft" / "model.safetensors")  # loads like any motion model
    assert after.config == before.config
    np.testing.assert_array_equal(after.stats.mean, before.stats.mean)  # the base's normalisation is kept
    b, a = before.model.state_dict(), after.model.state_dict()
    frozen = [k for k in b if k.startswith("decoder.layers.0.")]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
    assert not torch.equal(a["motion_in.weight"], b["motion_in.weight"])
    assert len(result["losses"]) == 3


@pytest.mark.slow
def test_learns_lip_sync_from_audio_that_shuffled_audio_cannot(tmp_path):
    """The short version of the CPU demo: same recipe, fewer clips and steps."""
    from training.evaluate import EvalConfig, evaluate

    data = build(tmp_path / "data", SynthConfig(clips=8, val_clips=2, seed=11), progress=False)
    val = load_clips(data, "val")
    scores = {}
    for shuffle in (False, True):
        cfg = small_config(data, tmp_path / f"run{shuffle}", steps=150, batch_size=16, lr=2e-3, warmup=20,
                           val_every=1000, log_every=1000, ckpt_every=1000, ema_decay=0.98, shuffle_audio=shuffle,
                           model=dict(layers=1, width=32, heads=2, dropout=0.0), diffusion_steps=50)
        result = train(cfg)
        metrics = evaluate(result["model"], build_diffusion(50), val, result["mean"], result["std"], 10,
                           EvalConfig(window=25, steps=5, seeds=1, max_lag=4))
        scores[shuffle] = metrics["lipsync_corr"]
    print("held-out lip-sync proxy (real audio, shuffled audio):", scores)
    assert scores[False] > 0.3 and scores[False] > scores[True] + 0.2, scores
