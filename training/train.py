"""The training loop for the motion DiT, readable top to bottom (nanoGPT-style).

One step: draw the batch of this step (a pure function of seed and step), noise the target window at a random
diffusion step, predict x0 from [context motion ; noisy window] with the audio dropped for a fraction of the
batch (classifier-free guidance), loss = x0 MSE + velocity MSE + acceleration MSE (the window's differences are
taken across the junction with the last context frame, so seams are penalised too), AdamW + warm-up + cosine
decay, gradient clipping, EMA. Everything random is either drawn from generators seeded by (seed, step, rank) or
from the global RNGs saved in the checkpoint, so a resumed run reproduces the uninterrupted one exactly.

Scale out: run the same command under `torchrun`; gloo on CPU, nccl on GPU. `--global-batch` windows per step
whatever the number of processes: each rank takes its rows of the same global batch (`training.data.WindowSampler`)
and, when they do not fit at once, runs them as `--micro-batch` sized pieces with gradient accumulation. Batches
come from memory-mapped packed arrays through a DataLoader (`--workers` processes, `--prefetch` steps ahead).

Multi-node: only rank 0 writes checkpoints, into its --out; on resume rank 0 names the step and every rank loads
that file from its own --out, or all stop with a message. So --out must be shared storage (or copied to every node).
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

from core.atomic import atomic_path
from core.motion.diffusion import predict_x0
from training import checkpointing, streaming
from training.data import (
    DataError,
    PackedSplit,
    WindowSampler,
    batch_loader,
    ensure_packed,
    motion_stats,
    read_dataset_info,
    write_json,
)


class TrainError(RuntimeError):
    """The run cannot start or resume as asked; the message says why and what to do."""


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/motion"
    steps: int = 2000
    global_batch: int = 16  # windows per optimiser step, summed over all processes
    micro_batch: int = 0  # windows per forward pass per process (0: global_batch / processes, no accumulation)
    workers: int = 2  # data-loader processes per training process (0: load in the training process)
    prefetch: int = 4  # batches each loader worker prepares ahead
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
    context_noise: float = 0.1  # streaming DiT: max std of the noise on the context (normalised units)
    self_context: float = 0.5  # streaming DiT: fraction of samples whose context ends in self-generated frames
    guidance_max: float = 3.0  # streaming DiT with guidance_embed: largest guidance scale trained in
    guidance_start: float = 0.3  # ... from this fraction of the steps on (its own guided targets need a model)
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    threads: int = 0  # torch CPU threads per process (0 = torch's default); 1 is much faster on a busy CPU
    model: dict = field(default_factory=dict)  # DiTConfig overrides
    init_from: str = ""  # finetune: a base checkpoint (training .pt or exported motion model)
    freeze: tuple[str, ...] = ()  # finetune: parameter-name prefixes that stay fixed
    export: str = ""  # where to write the app-loadable model at the end (default: out/model; "none": skip)


# ---------------------------------------------------------------- the model and the diffusion (from core.motion)

def build_model(model_cfg: dict, audio_dim: int, context: int, diffusion_steps: int | None = None,
                min_frames: int = 0) -> torch.nn.Module:
    """A DiT (windowed or streaming, `kind`) from DiTConfig overrides; the data decides audio_dim and the run
    decides context/steps."""
    from core.motion.dit import DiTConfig
    from core.motion.models import build_dit

    values = {**model_cfg, "audio_dim": audio_dim, "context": context}
    if diffusion_steps is not None:
        values["diffusion_steps"] = diffusion_steps
    cfg = DiTConfig.from_dict(values)
    if cfg.max_frames < min_frames:
        cfg.max_frames = min_frames
    return build_dit(cfg)


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


def autocast_ctx(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "off":
        return nullcontext(), None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def micro_batch_size(cfg: TrainConfig, world: int) -> tuple[int, int]:
    """(windows per forward pass, forward passes per step) for this world size."""
    if cfg.global_batch % world:
        raise TrainError(f"--global-batch {cfg.global_batch} must be divisible by the number of processes ({world}).")
    per_rank = cfg.global_batch // world
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise TrainError(f"--micro-batch {micro} must divide the {per_rank} windows each of the {world} processes "
                         f"gets of --global-batch {cfg.global_batch}.")
    return micro, per_rank // micro


def resume_state(out: Path, rank: int, world: int) -> tuple[int, dict | None]:
    """(step, checkpoint) that every rank resumes from: rank 0's newest, checked to load on every rank."""
    newest = checkpointing.latest(out / "checkpoints")
    step = checkpointing.step_of(newest) if newest is not None else 0
    if world > 1:
        box = [step]
        dist.broadcast_object_list(box, src=0)
        step = int(box[0])
    state, problem = None, ""
    if step:
        path = out / "checkpoints" / f"ckpt-{step:08d}.pt"
        if not path.is_file():
            problem = f"rank {rank} has no {path}"
        else:
            try:
                state = checkpointing.load(path)
            except RuntimeError as exc:
                problem = f"rank {rank}: {exc}"
    problems = [problem]
    if world > 1:
        problems = [None] * world
        dist.all_gather_object(problems, problem)
    problems = [p for p in problems if p]
    if problems and world > 1:
        raise TrainError(
            f"Cannot resume: rank 0 resumes from step {step}, but {'; '.join(problems)}. Only rank 0 writes "
            "checkpoints (into its --out) and every rank reads them from its own --out, so --out must be one "
            "folder on storage every node shares (NFS, Lustre, a mounted bucket). Put the run folder on shared "
            "storage (or copy OUT/checkpoints to every node) and start again.")
    if problems:
        raise TrainError(problems[0])
    return step, state


def check_same_model(state: dict, model, path: str) -> None:
    """A checkpoint resumes only the model it was made with (else load_state_dict fails on sizes)."""
    saved, now = state.get("model_config", {}), model_config_dict(model)
    diff = {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)}
    if diff:
        keys = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
        resume = {k: v for k, v in saved.items() if k not in ("audio_dim", "context", "diffusion_steps")}
        raise TrainError(
            f"{path} holds a different model than this run builds ({keys}). Resume with the same --model "
            f"(the checkpoint's is '{json.dumps(resume, separators=(',', ':'))}') and data, or start a new run "
            "with another --out (`finetune --base` starts from that checkpoint's weights).")


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
    micro, accum = micro_batch_size(cfg, world)

    # --- data: memory-mapped packed arrays (a single process packs a new or changed dataset itself)
    info = ensure_packed(cfg.data, allow_pack=world == 1)
    train_split = PackedSplit(cfg.data, "train")
    mean, std = motion_stats(info)
    audio_dim = train_split.feature_dim
    sampler = WindowSampler(train_split, mean, std, cfg.global_batch, cfg.context, cfg.lengths, cfg.seed, rank,
                            world, shuffle_audio=cfg.shuffle_audio, diffusion_steps=cfg.diffusion_steps,
                            cfg_drop=cfg.cfg_drop)
    val_sampler = None
    if info["splits"].get("val", {}).get("clips", 0) == 0:
        if master:
            print(f"no validation clips in {cfg.data}: training without validation (val_loss stays empty)")
    else:
        try:
            val_sampler = WindowSampler(PackedSplit(cfg.data, "val"), mean, std, cfg.global_batch, cfg.context,
                                        cfg.lengths, cfg.seed + 1, diffusion_steps=cfg.diffusion_steps)
        except DataError as exc:  # validation clips too short for any window
            if master:
                print(f"training without validation: {exc}")

    # --- model, diffusion, optimiser
    torch.manual_seed(cfg.seed)
    base_state = None
    if cfg.init_from:
        base_state, model_cfg, base_stats = checkpointing.load_base(cfg.init_from)
        cfg.model = {k: v for k, v in {**model_cfg, **cfg.model}.items()
                     if k not in ("audio_dim", "context", "diffusion_steps")}
        cfg.diffusion_steps = int(model_cfg.get("diffusion_steps", cfg.diffusion_steps))
        sampler.diffusion_steps = cfg.diffusion_steps
        if val_sampler is not None:
            val_sampler.diffusion_steps = cfg.diffusion_steps
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
    is_streaming = model.config.kind == "streaming"
    if is_streaming:  # windows of [context ; rollout ; chunk ; look-ahead] (training/streaming.py)
        n = streaming.window_length(model.config.lookahead)
        for s in (sampler, val_sampler):
            if s is not None:
                if s.split.max_frames < cfg.context + n:
                    raise TrainError(f"a streaming DiT trains on {cfg.context + n}-frame windows; the longest "
                                     f"'{s.split.split}' clip has {s.split.max_frames} frames.")
                s.lengths, s.max_len = (n,), cfg.context + n
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

    # --- resume: every rank from the step rank 0 names, or none
    start, state = resume_state(out, rank, world)
    if state is not None:
        where = out / "checkpoints" / f"ckpt-{start:08d}.pt"
        check_same_model(state, model, str(where))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        checkpointing.set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        print(f"rank {rank}: resumed from {where} at step {start}" if world > 1 else
              f"resumed from {where} at step {start}", flush=True)

    # --- logging
    log_file = writer = tb = None
    if master:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", asdict(cfg))
        if start and (out / "log.csv").exists():  # a killed run logged steps past its checkpoint: drop them
            with open(out / "log.csv", newline="") as f:
                rows = list(csv.reader(f))
            kept = [r for r in rows[1:] if r and int(r[0]) <= start]
            with atomic_path(out / "log.csv") as tmp, open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(rows[:1] + kept)
        new = not (out / "log.csv").exists()
        log_file = open(out / "log.csv", "a", newline="")
        writer = csv.writer(log_file)
        if new:
            writer.writerow(["step", "loss", "x0", "vel", "acc", "lr", "grad_norm", "val_loss", "seconds"])
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tb"))
        except ImportError:
            print("tensorboard is not installed: logging to log.csv only")

    losses, vals = [], []
    t0 = time.time()
    step = start
    model.train()
    batches = iter(batch_loader(sampler, start, cfg.steps, cfg.workers, cfg.prefetch, device.type == "cuda"))
    while step < cfg.steps:
        batch = next(batches).to(device)
        opt.zero_grad(set_to_none=True)
        logged = torch.zeros(4, device=device)
        for k in range(accum):  # gradient accumulation: the rank's rows in `micro`-sized pieces
            mb = batch.rows(slice(k * micro, (k + 1) * micro))
            sync = net.no_sync() if world > 1 and k < accum - 1 else nullcontext()
            with sync:
                with amp_ctx:
                    if is_streaming:  # the live call, on partly self-generated context (training/streaming.py)
                        x_t, t, ctx, audio, drop, guidance, target = streaming.inputs(model, net, diffusion, mb,
                                                                                     cfg, step, train=True)
                    else:
                        x_t, t, ctx, audio, drop, guidance = (diffusion.q_sample(mb.target, mb.t, mb.noise), mb.t,
                                                              mb.context, mb.audio, mb.drop, None)
                        target = mb.target
                    pred = predict_x0(net, x_t, t, ctx, audio, drop, guidance)
                parts = motion_loss(pred.float(), target.float(), ctx, cfg)
                loss = parts["loss"] / accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
            logged += torch.stack([parts[n].detach() for n in ("loss", "x0", "vel", "acc")]) / accum
        if scaler is not None:
            scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched.step()
        ema.update(model)
        step += 1

        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        loss_value = float(logged[0])
        losses.append(loss_value)
        val_loss = ""
        if val_sampler is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            val_loss = validate(model, ema, diffusion, val_sampler, cfg, device, micro)
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
    del batches  # stops the loader's worker processes

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
def validate(model, ema, diffusion, sampler, cfg: TrainConfig, device, micro: int) -> float:
    """Mean loss of the EMA weights on fixed validation batches (fixed t, noise, no audio dropout)."""
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema.copy_to(model)
    model.eval()
    rng_saved = checkpointing.rng_state()
    total, count = 0.0, 0
    for i in range(cfg.val_batches):
        batch = sampler.batch(i).to(device)
        for a in range(0, len(batch.t), micro):
            mb = batch.rows(slice(a, a + micro))
            if model.config.kind == "streaming":
                x_t, t, ctx, audio, drop, _, target = streaming.inputs(model, model, diffusion, mb, cfg, 0, False)
            else:
                x_t, t, ctx, audio, target = diffusion.q_sample(mb.target, mb.t, mb.noise), mb.t, mb.context, \
                    mb.audio, mb.target
                drop = torch.zeros(len(mb.t), dtype=torch.bool, device=device)
            pred = predict_x0(model, x_t, t, ctx, audio, drop)
            total += float(motion_loss(pred.float(), target, ctx, cfg)["loss"]) * len(mb.t)
            count += len(mb.t)
    checkpointing.set_rng_state(rng_saved)
    model.load_state_dict(backup)
    model.train()
    return total / count


def save_checkpoint(out, step, model, opt, sched, ema, scaler, cfg, mean, std, audio_dim, world) -> None:
    """Rank 0 writes into its --out; the RNG states of every rank are gathered so each resumes its own."""
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
    """EMA weights in core.motion.checkpoint's format (what the app loads), with the dataset's audio settings."""
    import copy

    ema_model = copy.deepcopy(model).cpu().float().eval()
    ema.copy_to(ema_model)
    if master and cfg.export != "none":
        from core.motion.checkpoint import MotionStats, save_motion_model

        info = read_dataset_info(Path(cfg.data))
        path = Path(cfg.export or Path(cfg.out) / "model.safetensors")
        save_motion_model(path, ema_model, MotionStats(np.asarray(mean, np.float32), np.asarray(std, np.float32)),
                          audio={**info.get("audio_config", {}), "features": info.get("features", ""),
                                 "dim": audio_dim})
        print(f"exported the EMA model to {path}")
    return ema_model


# ---------------------------------------------------------------- CLI

HELP = {
    "steps": "optimiser steps in total (a resumed run continues to this many)",
    "global_batch": "windows per optimiser step over all processes; stays fixed when the process count changes",
    "micro_batch": "windows per forward pass and process (0: global batch / processes); smaller values "
                   "accumulate gradients over several passes, for GPUs with less memory",
    "workers": "data-loader processes per training process (0: load batches in the training process)",
    "prefetch": "batches each data-loader worker prepares ahead",
    "warmup": "steps of linear learning-rate warm-up",
    "val_every": "steps between validation losses (EMA weights, fixed batches)",
    "val_batches": "validation batches (of --global-batch windows) per validation",
    "ckpt_every": "steps between checkpoints (also written at the end, at --max-minutes and --stop-after)",
    "keep": "newest checkpoints to keep",
    "log_every": "steps between log.csv rows / printed lines",
    "seed": "seed of every random draw (batches, diffusion noise, initialisation)",
    "diffusion_steps": "diffusion steps of the noise schedule the model is trained for",
    "context": "frames of previous motion each window is conditioned on",
    "threads": "torch CPU threads per process (0: torch's default; 1 is much faster on a busy CPU)",
    "lr": "peak learning rate (AdamW)",
    "min_lr_ratio": "final learning rate as a fraction of --lr (cosine decay)",
    "weight_decay": "AdamW weight decay of the weight matrices",
    "grad_clip": "gradient-norm clipping threshold",
    "ema_decay": "decay of the exponential moving average of the weights (what is exported)",
    "cfg_drop": "fraction of windows trained without audio (enables classifier-free guidance)",
    "w_vel": "weight of the velocity loss",
    "w_acc": "weight of the acceleration loss",
    "max_minutes": "stop (with a checkpoint and an export) after this wall time; 0: no limit",
    "context_noise": "streaming DiT: largest std of the noise put on the context (normalised motion units)",
    "self_context": "streaming DiT: fraction of samples whose context ends in frames the model generated itself",
    "guidance_max": "streaming DiT with guidance_embed: largest guidance scale folded into the model",
    "guidance_start": "streaming DiT: fraction of the steps after which guided targets are trained",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", required=True, help="dataset folder (preprocess or synth output)")
    p.add_argument("--out", default=d.out, help="run folder: checkpoints/, log.csv, config.json, model.safetensors; "
                   "with several nodes it must be on storage they all share")
    for name in ("steps", "global_batch", "micro_batch", "workers", "prefetch", "warmup", "val_every", "val_batches",
                 "ckpt_every", "keep", "log_every", "seed", "diffusion_steps", "context", "threads"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name), help=HELP[name])
    for name in ("lr", "min_lr_ratio", "weight_decay", "grad_clip", "ema_decay", "cfg_drop", "w_vel", "w_acc",
                 "max_minutes", "context_noise", "self_context", "guidance_max", "guidance_start"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name), help=HELP[name])
    p.add_argument("--lengths", default=",".join(map(str, d.lengths)),
                   help="window lengths N (frames) to train on, comma separated; one is drawn per step")
    p.add_argument("--device", default=d.device, help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda:N")
    p.add_argument("--amp", default=d.amp, choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision on CUDA (auto: bf16 if supported, else fp16)")
    p.add_argument("--shuffle-audio", action="store_true",
                   help="control run: pair motion with unrelated audio (lip sync should then not be learnt)")
    p.add_argument("--model", default="{}", help='DiTConfig overrides as JSON, e.g. \'{"layers": 2, "width": 64}\' '
                   '(\'{"kind": "streaming", "lookahead": 2, "guidance_embed": true}\': the causal live design) '
                   "(a resumed run must use the same)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="end after this step's checkpoint, as a crash would (the next run resumes there)")
    p.add_argument("--export", default=d.export,
                   help="app-loadable model file written at the end ('': OUT/model.safetensors; none: skip)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    values["lengths"] = tuple(int(x) for x in str(args.lengths).split(","))
    try:
        values["model"] = json.loads(args.model) if isinstance(args.model, str) else args.model
    except json.JSONDecodeError as exc:
        raise TrainError(f"--model is not JSON ({exc}): write it like '{{\"layers\": 2, \"width\": 64}}'") from exc
    if "freeze" in values:
        values["freeze"] = tuple(values["freeze"])
    return TrainConfig(**values)


def run(args: argparse.Namespace, make_config=config_from_args, label: str = "done") -> int:
    """Shared by train and finetune: clear errors instead of tracebacks, and a clean exit under torchrun."""
    try:
        result = train(make_config(args), stop_after=args.stop_after)
        print(f"{label} at step {result['step']}", flush=True)
        code = 0
    except (TrainError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 2
    if dist.is_initialized():
        dist.destroy_process_group()
        # Everything is saved and flushed. Skip interpreter teardown: gloo's worker threads can abort it
        # ("terminate called without an active exception", seen once in CI) after a clean run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(args: argparse.Namespace) -> int:
    return run(args)
