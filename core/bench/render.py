"""Renderer benchmark: per-stage ms/frame and fps per backend (core.backends) x precision x batch size.

Every row is a ratio to plain eager fp32 batch 1 measured in the same run, and carries the error of its face
image vs fp32 (max abs, PSNR): on the parity kit's inputs against the official fp32 output when the kit is
found (official size), else against eager fp32 on the same input. The networks are the kit's stand-in weights or
random ones: speed does not depend on the weights' values, so no download is needed.
Stages are timed inside one real pass (the device is synchronised between stages), so they add up to the
frame time instead of being measured in isolation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core import layout
from core.atomic import atomic_path
from core.cli_args import add_size_argument
from core.device import DeviceSpec, pick_device
from core.liveportrait import LivePortraitConfig, build_liveportrait, load_liveportrait
from core.render import PreparedPortrait, Renderer

STAGES = ("keypoints", "warping", "spade", "paste", "d2h")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    add_size_argument(parser, default="official")
    parser.add_argument("--frames", type=int, default=None,
                        help="timed frames per row, rounded up to whole batches (default: 16 on a GPU, 1 on CPU, "
                             "where one official frame takes seconds)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--backend", "--backends", dest="backends", default=None,
                        help="comma-separated renderer backends: eager, compile, cudagraph, onnx (default: eager, "
                             "compile, onnx on the CPU; all four on CUDA)")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated: fp32, fp16, bf16 (default fp32,bf16 on the CPU; fp32,fp16,bf16 on "
                             "CUDA); rows run for every backend x precision, fp32 eager first as the baseline")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--kit", default=None,
                        help="LivePortrait parity kit folder: official-size rows use its weights and report each "
                             "variant's error vs the official fp32 output (default: ../shared/parity if present)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not prepend the eager fp32 baseline row (x base and errors are then relative to "
                             "the first row)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file (after every row)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no new row after this many seconds (the GPU check's per-step limit)")


def _sync(spec: DeviceSpec) -> None:
    if spec.is_cuda:
        torch.cuda.synchronize(spec.device)
    elif spec.device.type == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def timed_pass(renderer: Renderer, portrait: PreparedPortrait, motion: torch.Tensor,
               host: torch.Tensor) -> dict[str, float]:
    """One batch through the renderer's own stages -> seconds per stage (whole batch)."""
    spec, dtype, b = renderer.spec, renderer.spec.storage_dtype, motion.shape[0]
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    x_d = renderer.driving_keypoints(portrait, motion)
    _sync(spec)
    t1 = time.perf_counter()
    warped = renderer._warp(portrait.feature_3d.expand(b, -1, -1, -1, -1), x_d.to(dtype),
                            portrait.x_s.expand(b, -1, -1).to(dtype))["out"]
    _sync(spec)
    t2 = time.perf_counter()
    faces = renderer._generate(warped)
    _sync(spec)
    t3 = time.perf_counter()
    on_host = spec.device.type == "cpu"  # the paste writes straight into host memory: no copy exists
    frames = renderer.composite(portrait, faces, host if on_host else None)
    _sync(spec)
    t4 = time.perf_counter()
    if not on_host:
        host.copy_(frames, non_blocking=True)
        _sync(spec)
    t5 = time.perf_counter()
    for name, (a, z) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
        times[name] = z - a
    times["total"] = t5 - t0
    return times


def bench_row(renderer: Renderer, portrait: PreparedPortrait, batch: int, frames: int,
              warmup: bool) -> dict[str, float]:
    """Best timed pass (by total) of ceil(frames / batch) passes -> seconds per frame per stage."""
    spec = renderer.spec
    rng = np.random.default_rng(0)
    motion = torch.from_numpy(rng.normal(0, 0.01, (batch, layout.MOTION_DIM)).astype(np.float32)).to(spec.device)
    host = torch.empty((batch, *portrait.image.shape), dtype=torch.uint8, pin_memory=spec.is_cuda)
    if warmup:
        timed_pass(renderer, portrait, motion, host)
    passes = [timed_pass(renderer, portrait, motion, host) for _ in range(max(1, math.ceil(frames / batch)))]
    best = min(passes, key=lambda p: p["total"])
    return {k: v / batch for k, v in best.items()}


def _find_kit(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    root = Path(__file__).resolve().parents[2]
    for cand in (os.environ.get("HEADCAST_SHARED"), root / "shared", root.parent / "shared"):
        if cand and (Path(cand) / "parity" / "vectors.npz").is_file():
            return Path(cand) / "parity"
    return None


def _kit_weights(kit: Path, folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The kit's stand-in checkpoints written under `folder` (~521 MB, ~4 s) + its warp inputs / image output."""
    spec = importlib.util.spec_from_file_location("lp_make_weights", kit / "make_weights.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    manifest = make.load_manifest()
    for module in manifest:
        make.write_checkpoint(manifest, module, folder)
    vectors = np.load(kit / "vectors.npz")
    keys = ("warping_module/in/feature_3d", "warping_module/in/kp_driving", "warping_module/in/kp_source",
            "spade_generator/out/out")
    return folder, {k: vectors[k] for k in keys}


def image_error(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max abs, PSNR in dB) of a face image in [0, 1] against the fp32 reference."""
    diff = got.detach().float().cpu() - ref.detach().float().cpu()
    mse = float(diff.pow(2).mean())
    return float(diff.abs().max()), (math.inf if mse == 0 else 10 * math.log10(1.0 / mse))


@torch.inference_mode()
def _faces(renderer: Renderer, check: tuple[torch.Tensor, ...]) -> torch.Tensor:
    spec = renderer.spec
    f, kd, ks = (t.to(spec.device, spec.storage_dtype) for t in check)
    return renderer._generate(renderer._warp(f, kd, ks)["out"]).float().cpu().clone()


def _native_bf16() -> bool:
    from core.device import cpu_has_native_bf16

    return cpu_has_native_bf16()


def variants_for(spec32: DeviceSpec, args: argparse.Namespace) -> list[tuple[str, str]]:
    cuda = spec32.is_cuda
    backends = args.backends.split(",") if args.backends else (
        ["eager", "compile", "cudagraph", "onnx"] if cuda else ["eager", "compile", "onnx"])
    if args.no_compile:
        backends = [b for b in backends if b != "compile"]
    precisions = args.precisions.split(",") if args.precisions else (["fp32", "fp16", "bf16"] if cuda
                                                                     else ["fp32", "bf16"])
    if not args.precisions and not cuda and args.size == "official" and not _native_bf16():
        # emulated bf16 runs 3-D convolutions through a reference kernel: an official frame took over 40 min on
        # the 2-core development CPU (docs/benchmarks.md), so the default run leaves the row out and says so
        precisions.remove("bf16")
    out = [] if getattr(args, "no_baseline", False) else [("eager", "fp32")]
    out += [(b, p) for p in precisions for b in backends if (b, p) not in out]
    return out


def main(args: argparse.Namespace) -> int:
    spec32 = pick_device(args.device, half=False)
    config = LivePortraitConfig.official() if args.size == "official" else LivePortraitConfig.tiny()
    frames = args.frames or (16 if spec32.device.type != "cpu" else 1)
    batches = [int(b) for b in args.batches.split(",")]
    variants = variants_for(spec32, args)
    if spec32.is_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    from skimage import data

    t_start = time.perf_counter()
    image = data.astronaut()
    kit = _find_kit(args.kit) if args.size == "official" else None
    tmp = tempfile.TemporaryDirectory(prefix="headcast-bench-") if kit else None
    root, kit_vectors = _kit_weights(kit, Path(tmp.name)) if kit else (None, None)
    weights = f"the parity kit's stand-in weights ({kit})" if kit else \
        "STAND-IN weights (build_liveportrait random init; speed does not depend on weight values)"
    print(f"render benchmark: {config.name} sizes with {weights}; device {spec32.describe()}; torch "
          f"{torch.__version__}; {torch.get_num_threads()} threads; portrait 512x512; best of ceil({frames}/batch) "
          f"timed batch(es)")
    if spec32.device.type == "cpu":
        from core.device import cpu_has_native_bf16

        native = "native (AVX512-BF16/AMX)" if cpu_has_native_bf16() else \
            "NOT native on this CPU (no avx512_bf16/amx in /proc/cpuinfo): bf16 kernels are emulated"
        print(f"CPU bf16: {native}")
        if not args.precisions and args.size == "official" and not cpu_has_native_bf16():
            print("bf16 rows left out (see variants_for): an emulated official-size frame takes tens of minutes "
                  "here; --precisions fp32,bf16 measures them anyway")
    cols = (*STAGES, "total")
    print("ms per frame" + ("  (CPU: the paste writes into host memory, so d2h is 0)" if not spec32.is_cuda else ""))
    print(f"{'variant':<24}{'batch':>6}" + "".join(f"{s:>10}" for s in cols)
          + f"{'fps':>9}{'x base':>8}{'max abs':>10}{'PSNR dB':>9}")
    base = None
    reference = None
    check = None
    rows: list[dict] = []
    for kind, precision in variants:
        label = f"{kind} {precision}"
        if args.budget_s is not None and time.perf_counter() - t_start > args.budget_s:
            print(f"{label:<24} skipped: the {args.budget_s:.0f} s budget is spent")
            rows.append({"backend": kind, "precision": precision, "skipped": "budget"})
            continue
        try:
            spec = pick_device(args.device, precision=precision)
            t0 = time.perf_counter()
            models = load_liveportrait(root) if root else build_liveportrait(config, seed=0)
            renderer = Renderer(models, spec, backend=kind)
            portrait = renderer.prepare(image, "astronaut")
            if check is None:  # the warp inputs every variant's error is measured on
                if kit_vectors is not None:
                    check = tuple(torch.from_numpy(kit_vectors[k]) for k in (
                        "warping_module/in/feature_3d", "warping_module/in/kp_driving", "warping_module/in/kp_source"))
                    reference = torch.from_numpy(kit_vectors["spade_generator/out/out"])
                else:
                    motion = torch.from_numpy(np.random.default_rng(1).normal(0, 0.01, (1, layout.MOTION_DIM))
                                              .astype(np.float32)).to(spec.device)
                    check = (portrait.feature_3d.float().cpu(),
                             renderer.driving_keypoints(portrait, motion).cpu(), portrait.x_s.float().cpu())
            faces = _faces(renderer, check)
            if reference is None:
                reference = faces
            max_abs, psnr = image_error(faces, reference)
            setup_s = time.perf_counter() - t0
        except Exception as exc:
            print(f"{label:<24} unavailable: {exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}")
            rows.append({"backend": kind, "precision": precision, "error": f"{exc.__class__.__name__}: {exc}"})
            _write(args.json, rows)
            continue
        label = f"{renderer.backend.name.split(' (')[0]} {precision}"
        for i, batch in enumerate(batches):
            # compiled / captured backends specialise per batch size: warm each up; eager only once (paging)
            warm = kind != "eager" or i == 0 or spec.device.type != "cpu"
            try:
                row = bench_row(renderer, portrait, batch, frames, warm)
            except Exception as exc:  # e.g. no C++ compiler for inductor: report the row, keep going
                print(f"{label:<24}{batch:>6}  failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:100]}")
                rows.append({"backend": kind, "precision": precision, "batch": batch,
                             "error": f"{exc.__class__.__name__}: {exc}"})
                continue
            if base is None:
                base = row["total"]
            print(f"{label:<24}{batch:>6}" + "".join(f"{row[s] * 1e3:>10.2f}" for s in cols)
                  + f"{1 / row['total']:>9.2f}{base / row['total']:>8.2f}{max_abs:>10.2e}{psnr:>9.1f}", flush=True)
            rows.append({"backend": kind, "name": renderer.backend.name, "precision": precision, "batch": batch,
                         "ms": {s: row[s] * 1e3 for s in cols}, "fps": 1 / row["total"],
                         "x_base": base / row["total"], "max_abs": max_abs, "psnr_db": psnr, "setup_s": setup_s})
            _write(args.json, rows)
        del renderer, portrait, models
    print("x base = speed relative to eager fp32 batch 1 in this run (higher is faster); max abs / PSNR = the face "
          "image (SPADE output, [0, 1]) vs " + ("the official fp32 output on the parity kit's inputs"
                                                 if kit_vectors is not None else "eager fp32 on the same input"))
    if tmp is not None:
        tmp.cleanup()
    return 0


def _write(path: str | None, rows: list[dict]) -> None:
    if path:
        with atomic_path(path, suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1))
