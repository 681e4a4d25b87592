"""The training loop for the motion DiT, readable top to bottom (nanoGPT-style).

One step: draw the batch of this step (a pure function of seed and step), noise the target window at a random
diffusion step, predict x0 from [context motion ; noisy window] with the audio dropped for a fraction of the
batch (classifier-free guidance), loss = x0 MSE + velocity MSE + acceleration MSE (the window's differences are
taken across the junction with the last context frame, so seams are penalised too), AdamW + warm-up + cosine
decay, gradient clipping, EMA. Everything random is either drawn from generators seeded by (seed, step, rank) or
from the global RNGs saved in the checkpoint, so a resumed run reproduces the uninterrupted one exactly.

Scale out: run the same command under `torchrun`; gloo on CPU, nccl on GPU. Each rank takes its rows of the
same global batch (`training.data.WindowSampler`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from core.motion.diffusion import predict_x0
from training import checkpointing
from training.data import DataError, WindowSampler, load_clips, motion_stats


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/motion"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    cfg_drop: float = 0.1  # probability that a sample's audio is replaced by the null condition
    w_vel: float = 1.0
    w_acc: float = 1.0
    context: int = 10
    lengths: tuple[int, ...] = (10, 25, 45, 65)
    diffusion_steps: int = 50
    val_every: int = 200
    val_batches: int = 4
    ckpt_every: int = 200
    keep: int = 3
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 on CUDA if supported else fp16) | bf16 | fp16 | off
    shuffle_audio: bool = False  # control run: audio unrelated to the motion
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    threads: int = 0  # torch CPU threads per process (0 = torch's default); 1 is much faster on a busy CPU
    model: dict = field(default_factory=dict)  # DiTConfig overrides
    init_from: str = ""  # finetune: a base checkpoint (training .pt or exported motion model)
    freeze: tuple[str, ...] = ()  # finetune: parameter-name prefixes that stay fixed
    export: str = ""  # where to write the app-loadable model at the end (default: out/model; "none": skip)


# ---------------------------------------------------------------- the model and the diffusion (from core.motion)

def build_model(model_cfg: dict, audio_dim: int, context: int, diffusion_steps: int | None = None,
                min_frames: int = 0) -> torch.nn.Module:
    """MotionDiT from DiTConfig overrides; the data decides audio_dim and the run decides context/steps."""
    from core.motion.dit import DiTConfig, MotionDiT

    values = {**model_cfg, "audio_dim": audio_dim, "context": context}
    if diffusion_steps is not None:
        values["diffusion_steps"] = diffusion_steps
    cfg = DiTConfig.from_dict(values)
    if cfg.max_frames < min_frames:
        cfg.max_frames = min_frames
    return MotionDiT(cfg)


def build_diffusion(steps: int):
    from core.motion.diffusion import CosineSchedule

    return CosineSchedule(steps)


# ---------------------------------------------------------------- helpers

def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to `min_lr_ratio`, as a factor of cfg.lr."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def motion_loss(pred, target, context, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    x0 = F.mse_loss(pred, target)
    full_p = torch.cat((context[:, -1:], pred), 1)
    full_t = torch.cat((context[:, -1:], target), 1)
    vel_p, vel_t = full_p.diff(dim=1), full_t.diff(dim=1)
    vel = F.mse_loss(vel_p, vel_t)
    acc = F.mse_loss(vel_p.diff(dim=1), vel_t.diff(dim=1))
    return {"loss": x0 + cfg.w_vel * vel + cfg.w_acc * acc, "x0": x0, "vel": vel, "acc": acc}


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1)[0]))
    return g


def diffusion_inputs(diffusion, batch, gen: torch.Generator, cfg: TrainConfig, device):
    b = batch.target.shape[0]
    t = torch.randint(1, diffusion.steps + 1, (b,), generator=gen, device=device)  # 1..steps
    noise = torch.randn(batch.target.shape, generator=gen, device=device)
    drop = torch.rand(b, generator=gen, device=device) < cfg.cfg_drop
    return t, diffusion.q_sample(batch.target, t, noise), drop


def autocast_ctx(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "off":
        return nullcontext(), None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def to_device(batch, device):
    batch.context, batch.target, batch.audio = (x.to(device, non_blocking=True)
                                                for x in (batch.context, batch.target, batch.audio))
    return batch


# ---------------------------------------------------------------- the loop

def train(cfg: TrainConfig, model: torch.nn.Module | None = None, diffusion=None,
          stop_after: int | None = None) -> dict:
    """Train (or resume from the newest checkpoint in cfg.out). `stop_after` ends early, as a kill would,
    right after that step's checkpoint. Returns {"losses": per-step losses of this run, "val": [(step, loss)],
    "model": the EMA model (a copy) when the run reached its end or time limit, else the live model, "step",
    "mean"/"std": the motion normalisation}."""
    # --- distributed set-up: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if cfg.device == "auto":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    master = rank == 0
    out = Path(cfg.out)
    prev_threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)

    # --- data
    train_clips = load_clips(cfg.data, "train")
    try:
        val_clips = load_clips(cfg.data, "val")
    except Exception:
        val_clips = []
    mean, std = motion_stats(train_clips)
    audio_dim = int(train_clips[0].audio.shape[1])
    sampler = WindowSampler(train_clips, mean, std, cfg.batch_size, cfg.context, cfg.lengths, cfg.seed, rank, world,
                            shuffle_audio=cfg.shuffle_audio)
    try:
        val_sampler = WindowSampler(val_clips, mean, std, cfg.batch_size, cfg.context, cfg.lengths, cfg.seed + 1)
    except DataError:  # no (long enough) validation clips: train without validation
        val_sampler = None

    # --- model, diffusion, optimiser
    torch.manual_seed(cfg.seed)
    base_state = None
    if cfg.init_from:
        from training.finetune import load_base

        base_state, model_cfg, base_stats = load_base(cfg.init_from)
        cfg.model = {k: v for k, v in {**model_cfg, **cfg.model}.items()
                     if k not in ("audio_dim", "context", "diffusion_steps")}
        cfg.diffusion_steps = int(model_cfg.get("diffusion_steps", cfg.diffusion_steps))
        if base_stats is not None:  # the base's weights live in its own normalised space
            mean, std = (np.asarray(x, np.float32) for x in base_stats)
            sampler.mean, sampler.std = mean, std
            if val_sampler is not None:
                val_sampler.mean, val_sampler.std = mean, std
    if model is None:
        model = build_model(cfg.model, audio_dim, cfg.context, cfg.diffusion_steps,
                            cfg.context + max(cfg.lengths))
    if base_state is not None:
        model.load_state_dict(base_state)
    if diffusion is None:
        diffusion = build_diffusion(cfg.diffusion_steps)
    model.to(device)
    for name, p in model.named_parameters():
        if any(name.startswith(prefix) for prefix in cfg.freeze):
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    ema = checkpointing.EMA(model, cfg.ema_decay)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    amp_ctx, scaler = autocast_ctx(device, cfg.amp)

    # --- resume
    start = 0
    resume_from = checkpointing.latest(out / "checkpoints")
    if resume_from is not None:
        state = checkpointing.load(resume_from)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        checkpointing.set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        start = state["step"]
        if master:
            print(f"resumed from {resume_from} at step {start}")

    # --- logging
    log_file = writer = tb = None
    if master:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        if start and (out / "log.csv").exists():  # a killed run logged steps past its checkpoint: drop them
            rows = list(csv.reader(open(out / "log.csv", newline="")))
            kept = [r for r in rows[1:] if r and int(r[0]) <= start]
            with open(out / "log.csv", "w", newline="") as f:
                csv.writer(f).writerows(rows[:1] + kept)
        new = not (out / "log.csv").exists()
        log_file = open(out / "log.csv", "a", newline="")
        writer = csv.writer(log_file)
        if new:
            writer.writerow(["step", "loss", "x0", "vel", "acc", "lr", "grad_norm", "val_loss", "seconds"])
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tb"))
        except Exception:  # tensorboard not installed: CSV only
            tb = None

    losses, vals = [], []
    t0 = time.time()
    step = start
    model.train()
    while step < cfg.steps:
        batch = to_device(sampler.batch(step), device)
        gen = step_generator(cfg.seed, step, rank, device)
        t, x_t, drop = diffusion_inputs(diffusion, batch, gen, cfg, device)
        with amp_ctx:
            pred = predict_x0(net, x_t, t, batch.context, batch.audio, drop)
        parts = motion_loss(pred.float(), batch.target, batch.context, cfg)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(parts["loss"]).backward()
            scaler.unscale_(opt)
        else:
            parts["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched.step()
        ema.update(model)
        step += 1

        logged = torch.stack([parts[k].detach() for k in ("loss", "x0", "vel", "acc")])
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        loss_value = float(logged[0])
        losses.append(loss_value)
        val_loss = ""
        if val_sampler is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            val_loss = validate(model, ema, diffusion, val_sampler, cfg, device)
            vals.append((step, val_loss))
        if master and (step % cfg.log_every == 0 or val_loss != "" or step == cfg.steps):
            values = [float(v) for v in logged]
            writer.writerow([step, *values, sched.get_last_lr()[0], float(grad_norm), val_loss,
                             round(time.time() - t0, 2)])
            log_file.flush()
            if tb is not None:
                for k, v in zip(("loss", "x0", "vel", "acc"), values):
                    tb.add_scalar(f"train/{k}", v, step)
                if val_loss != "":
                    tb.add_scalar("val/loss", val_loss, step)
            print(f"step {step:6d}  loss {values[0]:.4f}  x0 {values[1]:.4f}  lr {sched.get_last_lr()[0]:.2e}"
                  + (f"  val {val_loss:.4f}" if val_loss != "" else ""), flush=True)
        out_of_time = cfg.max_minutes > 0 and time.time() - t0 > 60 * cfg.max_minutes
        if world > 1:  # every rank must agree to stop
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag)
            out_of_time = bool(flag.item())
        if step % cfg.ckpt_every == 0 or step == cfg.steps or out_of_time or step == stop_after:
            save_checkpoint(out, step, model, opt, sched, ema, scaler, cfg, mean, std, audio_dim, world)
        if out_of_time or step == stop_after:
            break

    ema_model = model
    if master:
        log_file.close()
        if tb is not None:
            tb.close()
    if step == cfg.steps or (cfg.max_minutes > 0 and step < cfg.steps and stop_after is None):
        ema_model = export_model(model, ema, cfg, mean, std, audio_dim, master)
    if world > 1:
        dist.barrier()
    torch.set_num_threads(prev_threads)
    return {"losses": losses, "val": vals, "model": ema_model, "step": step, "mean": mean, "std": std}


@torch.no_grad()
def validate(model, ema, diffusion, sampler, cfg: TrainConfig, device) -> float:
    """Mean loss of the EMA weights on fixed validation batches (fixed t, noise, no audio dropout)."""
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema.copy_to(model)
    model.eval()
    rng_saved = checkpointing.rng_state()
    total = 0.0
    for i in range(cfg.val_batches):
        batch = to_device(sampler.batch(i), device)
        gen = step_generator(cfg.seed + 1, i, 0, device)
        t, x_t, _ = diffusion_inputs(diffusion, batch, gen, cfg, device)
        drop = torch.zeros(len(t), dtype=torch.bool, device=device)
        pred = predict_x0(model, x_t, t, batch.context, batch.audio, drop)
        total += float(motion_loss(pred.float(), batch.target, batch.context, cfg)["loss"])
    checkpointing.set_rng_state(rng_saved)
    model.load_state_dict(backup)
    model.train()
    return total / cfg.val_batches


def save_checkpoint(out, step, model, opt, sched, ema, scaler, cfg, mean, std, audio_dim, world) -> None:
    """Rank 0 writes; the RNG states of every rank are gathered so each resumes its own."""
    rng = checkpointing.rng_state()
    states = [rng]
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, rng)
    if int(os.environ.get("RANK", "0")) == 0:
        checkpointing.save(Path(out) / "checkpoints", step, {
            "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "ema": ema.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": states,
            "config": asdict(cfg), "model_config": model_config_dict(model), "audio_dim": audio_dim,
            "mean": mean, "std": std}, keep=cfg.keep)
    if world > 1:
        dist.barrier()


def model_config_dict(model) -> dict:
    return model.config.to_dict()


def export_model(model, ema, cfg: TrainConfig, mean, std, audio_dim, master: bool):
    """EMA weights in core.motion.checkpoint's format (what the app loads)."""
    import copy

    ema_model = copy.deepcopy(model).cpu().float().eval()
    ema.copy_to(ema_model)
    if master and cfg.export != "none":
        from core.motion.checkpoint import MotionStats, save_motion_model
        from training.data import read_manifest

        manifest = read_manifest(Path(cfg.data))
        path = Path(cfg.export or Path(cfg.out) / "model.safetensors")
        save_motion_model(path, ema_model, MotionStats(np.asarray(mean, np.float32), np.asarray(std, np.float32)),
                          audio={**manifest.get("audio_config", {}), "features": manifest.get("features", ""),
                                 "dim": audio_dim})
        print(f"exported the EMA model to {path}")
    return ema_model


# ---------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", required=True, help="dataset folder (preprocess or synth output)")
    p.add_argument("--out", default=d.out, help="run folder: checkpoints/, log.csv, model/")
    for name in ("steps", "batch_size", "warmup", "val_every", "val_batches", "ckpt_every", "keep", "log_every",
                 "seed", "diffusion_steps", "context", "threads"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("lr", "min_lr_ratio", "weight_decay", "grad_clip", "ema_decay", "cfg_drop", "w_vel", "w_acc",
                 "max_minutes"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--lengths", default=",".join(map(str, d.lengths)), help="window lengths N, comma separated")
    p.add_argument("--device", default=d.device)
    p.add_argument("--amp", default=d.amp, choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--shuffle-audio", action="store_true", help="control run: pair motion with unrelated audio")
    p.add_argument("--model", default="{}", help='DiTConfig overrides as JSON, e.g. \'{"layers": 2, "width": 64}\'')
    p.add_argument("--stop-after", type=int, default=None,
                   help="end after this step's checkpoint, as a crash would (the next run resumes there)")
    p.add_argument("--export", default="", help="app-loadable model file (default OUT/model.safetensors; none)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    values["lengths"] = tuple(int(x) for x in str(args.lengths).split(","))
    values["model"] = json.loads(args.model) if isinstance(args.model, str) else args.model
    if "freeze" in values:
        values["freeze"] = tuple(values["freeze"])
    return TrainConfig(**values)


def main(args: argparse.Namespace) -> int:
    result = train(config_from_args(args), stop_after=args.stop_after)
    print(f"done at step {result['step']}", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()
        # Everything is saved and flushed. Skip interpreter teardown: gloo's worker threads can abort it
        # ("terminate called without an active exception", seen once in CI) after a clean run.
        sys.stderr.flush()
        os._exit(0)
    return 0
