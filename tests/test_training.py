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

from training.data import PackedSplit, WindowSampler, load_clips, motion_stats, read_pack_info
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
    cfg = SynthConfig(clips=4, val_clips=1, seed=3, synthetic_weights=True)  # the stand-in speech model
    return build(tmp_path_factory.mktemp("synth"), cfg, progress=False)


def small_config(data: Path, out: Path, **kw) -> TrainConfig:
    values = dict(data=str(data), out=str(out), steps=8, global_batch=4, workers=0, warmup=2, val_every=4,
                  val_batches=1, ckpt_every=100, log_every=1, lengths=(10, 25), diffusion_steps=20, export="none",
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
    split = PackedSplit(synth_data, "train")
    mean, std = motion_stats(read_pack_info(synth_data))
    full = WindowSampler(split, mean, std, 4, seed=1).batch(7)
    halves = [WindowSampler(split, mean, std, 4, seed=1, rank=r, world=2).batch(7) for r in range(2)]
    for name in ("target", "audio", "t", "noise", "drop"):  # the same global rows, whatever the world size
        f, h0, h1 = getattr(full, name), getattr(halves[0], name), getattr(halves[1], name)
        assert torch.equal(f[0::2], h0) and torch.equal(f[1::2], h1), name
    assert torch.equal(WindowSampler(split, mean, std, 4, seed=1).batch(7).audio, full.audio)
    assert not torch.equal(WindowSampler(split, mean, std, 4, seed=1).batch(8).target[:, :10], full.target[:, :10])
    # every window lies inside one clip: its motion equals that clip's rows
    n, starts, _ = WindowSampler(split, mean, std, 4, seed=1).starts(7)
    offsets = np.asarray(split.maps["offsets"])
    for s in starts:
        clip = np.searchsorted(offsets, s, side="right") - 1
        assert offsets[clip] <= s and s + 10 + n <= offsets[clip + 1]


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
    common = ["--data", str(synth_data), "--steps", "4", "--global-batch", "4", "--workers", "1", "--warmup", "1",
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
    assert exported.config.audio_dim == 64 and exported.config.width == 32

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

    # the app's features (streamed wav2vec2, here the stand-in speech model): measured 0.66 vs 0.05 shuffled
    data = build(tmp_path / "data", SynthConfig(clips=8, val_clips=2, seed=11, synthetic_weights=True),
                 progress=False)
    val = load_clips(data, "val")
    scores = {}
    for shuffle in (False, True):
        cfg = small_config(data, tmp_path / f"run{shuffle}", steps=150, global_batch=16, lr=2e-3, warmup=20,
                           val_every=1000, log_every=1000, ckpt_every=1000, ema_decay=0.98, shuffle_audio=shuffle,
                           model=dict(layers=1, width=32, heads=2, dropout=0.0), diffusion_steps=50)
        result = train(cfg)
        metrics = evaluate(result["model"], build_diffusion(50), val, result["mean"], result["std"], 10,
                           EvalConfig(window=25, steps=5, seeds=1, max_lag=4))
        scores[shuffle] = metrics["lipsync_corr"]
    print("held-out lip-sync proxy (real audio, shuffled audio):", scores)
    assert scores[False] > 0.3 and scores[False] > scores[True] + 0.2, scores


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(outs: list[Path], args: list[str]) -> list[tuple[int, str, str]]:
    """Two ranks launched by hand, each with its own --out: two machines without shared storage."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    procs = [subprocess.Popen([sys.executable, "-m", "training", "train", "--out", str(outs[r]), *args],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) for r in range(2)]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)
            raise
        results.append((proc.returncode, out, err))
    return results


@pytest.mark.slow
def test_two_nodes_resume_at_the_same_step_or_stop_with_a_clear_error(synth_data, tmp_path):
    import shutil

    outs = [tmp_path / "node0", tmp_path / "node1"]
    common = ["--data", str(synth_data), "--steps", "4", "--global-batch", "4", "--workers", "0", "--warmup", "1",
              "--val-every", "100", "--ckpt-every", "100", "--log-every", "1", "--lengths", "10,25",
              "--diffusion-steps", "20", "--threads", "1", "--export", "none",
              "--model", json.dumps(dict(layers=1, width=32, heads=2, dropout=0.0)), "--device", "cpu"]
    first = two_nodes(outs, [*common, "--stop-after", "2"])
    assert [rc for rc, _, _ in first] == [0, 0], first[0][2][-2000:] + first[1][2][-2000:]
    assert (outs[0] / "checkpoints" / "ckpt-00000002.pt").is_file() and not (outs[1] / "checkpoints").exists()

    # rank 1 cannot see rank 0's checkpoint: both stop, both say why, nobody trains from step 0
    stopped = two_nodes(outs, common)
    for rc, out, err in stopped:
        assert rc == 2 and "Traceback" not in err, err[-2000:]
        assert "Cannot resume: rank 0 resumes from step 2, but rank 1 has no" in err and "shared" in err
        assert "step      3" not in out

    # with the checkpoint where rank 1 looks (what shared storage gives), both resume at step 2 and finish
    shutil.copytree(outs[0] / "checkpoints", outs[1] / "checkpoints")
    resumed = two_nodes(outs, common)
    for rank, (rc, out, err) in enumerate(resumed):
        assert rc == 0, err[-2000:]
        assert f"rank {rank}: resumed from" in out and "at step 2" in out and "done at step 4" in out


@pytest.mark.slow
def test_resume_with_another_model_says_so(synth_data, tmp_path):
    from training.train import TrainError

    train(small_config(synth_data, tmp_path / "run", steps=4), stop_after=2)
    with pytest.raises(TrainError, match=r"holds a different model than this run builds \(.*width 32 -> 48.*"
                                         r"Resume with the same --model"):
        train(small_config(synth_data, tmp_path / "run", steps=4, model=dict(layers=1, width=48, heads=2)))


def test_global_batch_is_the_same_computation_with_gradient_accumulation(synth_data, tmp_path):
    """global batch 4 as one pass or as 2 accumulated passes of 2: the same losses and weights (float rounding)."""
    runs = [train(small_config(synth_data, tmp_path / f"m{m}", steps=3, micro_batch=m, val_every=100,
                               model=dict(layers=1, width=32, heads=2, dropout=0.0))) for m in (4, 2)]
    np.testing.assert_allclose(runs[0]["losses"], runs[1]["losses"], rtol=1e-5)
    for (k, a), b in zip(runs[0]["model"].state_dict().items(), runs[1]["model"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_loader_workers_give_the_batches_of_the_step(synth_data):
    from training.data import batch_loader

    split = PackedSplit(synth_data, "train")
    mean, std = motion_stats(read_pack_info(synth_data))
    sampler = WindowSampler(split, mean, std, 4, seed=2, diffusion_steps=20, cfg_drop=0.5)
    loaded = list(batch_loader(sampler, 3, 7, workers=2, prefetch=2, pin=False))
    assert len(loaded) == 4
    for step, batch in zip(range(3, 7), loaded):
        direct = sampler.batch(step)
        assert all(torch.equal(a, b) for a, b in zip(batch.tensors(), direct.tensors()))


@pytest.mark.slow
def test_sampling_cost_and_memory_do_not_grow_with_clip_count(tmp_path):
    """bench-data at 1k and 100k clip records: the same anonymous memory; the timing is printed, not asserted."""
    from training.bench_data import run

    small, large = run([1000, 100_000], dim=16, steps=100, global_batch=64, folder=tmp_path)
    print(f"sampling ms/step: {small['sample_ms']:.3f} (1k clips), {large['sample_ms']:.3f} (100k clips); "
          f"anonymous MiB {small['anon_mib']:.1f} / {large['anon_mib']:.1f}")
    assert large["clips"] == 100_000 and large["frames"] > 100 * small["frames"] * 0.9
    assert abs(large["anon_mib"] - small["anon_mib"]) < 8  # no per-clip arrays in memory
    assert large["anon_mib"] - large["anon_before_mib"] < 8  # and nothing that grows per step


def test_eval_without_validation_clips_is_a_clear_error(tmp_path, synth_data, capsys):
    from training.__main__ import main

    data = build(tmp_path / "noval", SynthConfig(clips=2, val_clips=0, seed=5, synthetic_weights=True),
                 progress=False)
    train(small_config(data, tmp_path / "run", steps=1, export=""))
    code = main(["eval", "--model", str(tmp_path / "run" / "model.safetensors"), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and "has no 'val' clips" in err and "--split train" in err


def test_every_option_has_help_and_shows_its_default():
    import argparse
    import importlib

    from training.__main__ import COMMANDS, DefaultsFormatter

    for name, (module, _) in COMMANDS.items():
        p = argparse.ArgumentParser(formatter_class=DefaultsFormatter)
        mod = importlib.import_module(module)
        (getattr(mod, f"add_{name.replace('-', '_')}_arguments", None) or mod.add_arguments)(p)
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
            shown = p._get_formatter()._get_help_string(action)
            if action.option_strings and not action.required and action.default not in (None, False):
                assert "(default: %(default)s)" in shown, f"{name} {action.option_strings} hides its default"
        p.format_help()  # every help string formats


def test_manifest_is_append_only_and_survives_a_torn_last_record(tmp_path, caplog):
    from training.data import DataError, ManifestWriter, part_path, read_records

    path = part_path(tmp_path, 1, 2)
    writer = ManifestWriter(path)
    writer.append({"name": "a", "frames": 40})
    writer.append({"name": "b", "skipped": "no face in the first frame"})
    with open(path, "ab") as f:
        f.write(b'{"name": "c", "fra')  # killed mid-write
    assert set(read_records(tmp_path)) == {"a", "b"} and "torn" in caplog.text
    ManifestWriter(path).append({"name": "b", "frames": 50})  # the re-run: repaired, then appended
    records = read_records(tmp_path)
    assert records["b"] == {"name": "b", "frames": 50} and path.read_text().count("\n") == 3
    path.write_text('{"name": "a"}\nnot json\n{"name": "b"}\n')
    with pytest.raises(DataError, match="line 2 is not a JSON record"):
        read_records(tmp_path)


@pytest.mark.slow
def test_a_bands_model_is_refused_by_the_app_with_a_reason(tmp_path):
    from core.liveportrait import CheckpointError
    from core.motion.checkpoint import MotionCheckpointError
    from core.motion.generator import DiTMotionSource

    data = build(tmp_path / "bands", SynthConfig(clips=2, val_clips=0, seed=4, features="bands"), progress=False)
    train(small_config(data, tmp_path / "run", steps=1, export=""))
    with pytest.raises(MotionCheckpointError, match="'bands' features, which the app does not compute") as info:
        DiTMotionSource.create(tmp_path / "run" / "model.safetensors")
    assert isinstance(info.value, CheckpointError)  # what `python -m core render` and the app report
