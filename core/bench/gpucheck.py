"""One-shot GPU check: everything worth measuring on a lent GPU, in one run of at most 8 minutes, one report.

`python -m core.bench.gpucheck [--dry-run] [--out DIR]` (packaging/gpu-check.sh wraps it). Each step runs in its
own process with a hard time limit (a hung CUDA call or a slow torch.compile cannot eat the other steps), and the
limits are also cut to what is left of the total budget. Steps: env (versions, GPU, providers, core imports
without the app's packages), parity (the networks on the GPU vs the parity kit: fp32, fp16, bf16), onnx (export
+ onnxruntime parity), the render bench per backend at batch 1/4/8/16, the engine bench, and the latency bench
when this build has one. Results: DIR/gpu-check.json and DIR/gpu-check.md.

`--dry-run` runs every step on the CPU at the tiny size (parity against a float64 CPU reference instead of the
kit), with the app's packages blocked from import as on the GPU machine, so the check is known to work before a
GPU is ever lent.
"""

from __future__ import annotations

import argparse
import copy
import importlib.abc
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# absent on the GPU machine (KINDS.md's package list); the check sets HEADCAST_CACHE_DIR / HEADCAST_WEIGHTS_DIR so
# that nothing needs platformdirs there
BLOCKED = ("av", "PySide6", "sounddevice", "pyvirtualcam", "qasync", "platformdirs")
TOTAL_BUDGET_S = 480.0
DRY_SLACK = 10  # dry-run step limits are this many times the GPU ones (a shared 2-core CPU)


class _Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import av` etc. fail as they do where the packages are not installed.

    The failure comes from the loader, not from `find_spec`: libraries such as transformers probe optional
    packages with `importlib.util.find_spec` at import time, and a finder that raised there would break their
    import here although it works on the GPU machine.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named '{spec.name}' (blocked by the GPU check's dry run)",
                                  name=spec.name)

    def exec_module(self, module) -> None:  # never reached: create_module raises
        raise ModuleNotFoundError(module.__name__)


def _install_blocker() -> None:
    names = [n for n in os.environ.get("HEADCAST_BLOCK_IMPORTS", "").split(",") if n]
    if names:
        sys.meta_path.insert(0, _Blocker(names))


# ------------------------------------------------------------------------------------------------ steps
def step_env(args: argparse.Namespace) -> dict:
    import torch

    info: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
                  "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sm_count=p.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    for pkg in ("transformers", "onnx", "onnxruntime", "onnxscript", "numpy", "cv2", "triton"):
        try:
            info[pkg] = importlib.import_module(pkg).__version__
        except Exception as exc:  # a missing optional package is a finding, not a failure
            info[pkg] = f"missing ({exc.__class__.__name__})"
    try:
        from core.backends.ort import available_providers

        info["onnxruntime_providers"] = available_providers()
    except ImportError as exc:
        info["onnxruntime_providers"] = f"missing ({exc})"
    imported, failed = [], {}
    for mod in ("core", "core.render", "core.backends", "core.backends.onnx_export", "core.pipeline",
                "core.engine", "core.offline", "core.bench.render", "core.bench.engine", "core.audio.features",
                "core.motion", "core.weights"):
        try:
            importlib.import_module(mod)
            imported.append(mod)
        except Exception as exc:
            failed[mod] = f"{exc.__class__.__name__}: {exc}"
    info["imports_ok"], info["imports_failed"] = imported, failed
    info["ok"] = not failed
    return info


def _error(got, ref) -> dict:

    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    diff = got - ref
    return {"max_abs": float(diff.abs().max()), "rel_l2": float(diff.norm() / max(float(ref.norm()), 1e-30))}


def step_parity(args: argparse.Namespace) -> dict:
    """Each network on the device at fp32 / fp16 / bf16 vs a reference: the kit's official fp32 outputs
    (official size), or the same network in float64 on the CPU (dry run, tiny)."""
    import numpy as np
    import torch

    from core.backends import autocast
    from core.backends.onnx_export import MOTION_KEYS, NETWORKS, example_inputs
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    kit = None if args.dry_run else _kit_dir()
    tmp = tempfile.TemporaryDirectory(prefix="headcast-gpucheck-")
    if kit is not None:
        models, inputs, refs = _kit_cases(kit, Path(tmp.name))
    else:
        models = build_liveportrait(LivePortraitConfig.tiny() if args.dry_run else LivePortraitConfig.official(), 0)
        inputs = {n: example_inputs(models, n) for n in NETWORKS}
        ref64 = copy.deepcopy(models).to("cpu", torch.float64)
        with torch.no_grad():
            refs = {n: _outputs(getattr(ref64, n), n, tuple(t.double() for t in inputs[n]), MOTION_KEYS)
                    for n in NETWORKS}
    result: dict = {"reference": f"parity kit {kit}" if kit else "float64 on the CPU", "rows": [], "ok": True}
    bounds = {"fp32": (1e-3, 5e-4), "fp16": (None, 3e-2), "bf16": (None, 3e-2)}  # kit README: GPU fp32 bounds
    for precision in args.precisions.split(","):
        try:
            spec = pick_device(args.device, precision=precision)
        except (ValueError, RuntimeError) as exc:
            result["rows"].append({"precision": precision, "skipped": str(exc)})
            continue
        m = copy.deepcopy(models).to(spec.device, spec.storage_dtype)
        for name in NETWORKS:
            net = autocast(spec, getattr(m, name))
            xs = tuple(t.to(spec.device, spec.storage_dtype) for t in inputs[name])
            t0 = time.perf_counter()
            with torch.no_grad():
                outs = _outputs(net, name, xs, MOTION_KEYS)
            if spec.is_cuda:  # kernels run asynchronously: without this, `seconds` is the launch time only
                torch.cuda.synchronize(spec.device)
            seconds = time.perf_counter() - t0
            for key, out in outs.items():
                err = _error(out, refs[name][key])
                max_abs, rel = bounds[precision]
                ok = bool(np.isfinite(err["max_abs"])) and err["rel_l2"] <= rel and (
                    max_abs is None or err["max_abs"] <= max_abs)
                result["ok"] &= ok
                result["rows"].append({"precision": precision, "network": name, "output": key, **err, "ok": ok,
                                       "seconds": seconds})
            print(f"parity {precision} {name}: {seconds:.2f} s", flush=True)
            _save_partial(args, result)
        del m
    tmp.cleanup()
    return result


def _outputs(net, name: str, xs, motion_keys) -> dict:
    if name == "warping_module" and xs[0].shape[0] != xs[1].shape[0]:  # one volume for a batch of keypoints
        xs = (xs[0].expand(xs[1].shape[0], -1, -1, -1, -1), *xs[1:])
    out = net(*xs)
    if name == "motion_extractor":
        return {k: out[k] for k in motion_keys}
    if name == "warping_module":
        return {k: out[k] for k in ("out", "occlusion_map", "deformation")}
    return {"out": out}


def _kit_dir() -> Path | None:
    from core.bench.render import _find_kit

    return _find_kit(None)


def _kit_cases(kit: Path, folder: Path):
    """Kit weights + per-network stored inputs and official fp32 outputs."""
    import numpy as np
    import torch

    from core.bench.render import _kit_weights
    from core.liveportrait import load_liveportrait

    root, _ = _kit_weights(kit, folder)
    v = np.load(kit / "vectors.npz")

    def t(k):
        return torch.from_numpy(v[k])

    inputs = {"appearance_feature_extractor": (t("appearance_feature_extractor/in/x"),),
              "motion_extractor": (t("motion_extractor/in/x"),),
              "warping_module": (t("warping_module/in/feature_3d"), t("warping_module/in/kp_driving"),
                                 t("warping_module/in/kp_source")),
              "spade_generator": (t("spade_generator/in/feature"),)}
    refs = {"appearance_feature_extractor": {"out": t("appearance_feature_extractor/out/feature_3d")},
            "motion_extractor": {k: t(f"motion_extractor/out/{k}") for k in
                                 ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")},
            "warping_module": {k: t(f"warping_module/out/{k}") for k in ("out", "occlusion_map", "deformation")},
            "spade_generator": {"out": t("spade_generator/out/out")}}
    for name in ("stitching", "lip", "eye"):
        inputs[name] = (t(f"stitching_retargeting_module/in/{name}"),)
        refs[name] = {"out": t(f"stitching_retargeting_module/out/{name}")}
    return load_liveportrait(root), inputs, refs


def step_onnx(args: argparse.Namespace) -> dict:
    """Export every network and run it in this machine's onnxruntime (its best provider) vs eager fp32."""
    import torch

    from core.backends.onnx_export import MOTION_KEYS, NETWORKS, example_inputs, export_network
    from core.backends.ort import OrtNetwork
    from core.liveportrait import LivePortraitConfig, build_liveportrait

    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    models = build_liveportrait(LivePortraitConfig.tiny() if args.dry_run else LivePortraitConfig.official(), 0)
    result: dict = {"rows": [], "ok": True}
    with tempfile.TemporaryDirectory(prefix="headcast-onnx-") as cache:
        for name in NETWORKS:
            t0 = time.perf_counter()
            path = export_network(models, name, cache_dir=Path(cache))
            export_s = time.perf_counter() - t0
            net = OrtNetwork(path, device)
            xs = example_inputs(models, name)
            net(*xs)  # warm-up: session set-up, output shapes
            t0 = time.perf_counter()
            outs = net(*xs)
            run_s = time.perf_counter() - t0
            with torch.no_grad():
                ref = _outputs(getattr(models, name), name, xs, MOTION_KEYS)
            for key, out in zip(ref, outs):
                err = _error(out, ref[key])
                ok = err["max_abs"] <= 1e-3 and err["rel_l2"] <= 5e-4
                result["ok"] &= ok
                result["rows"].append({"network": name, "output": key, "provider": net.provider, **err, "ok": ok,
                                       "export_s": export_s, "run_s": run_s,
                                       "mb": round(path.stat().st_size / 2**20, 1)})
            print(f"onnx {name}: export {export_s:.1f} s, run {run_s:.2f} s ({net.provider})", flush=True)
            _save_partial(args, result)
    return result


def _save_partial(args: argparse.Namespace, result: dict) -> None:
    """The rows so far, marked partial: a step killed at its limit (official sizes on an unknown machine) still
    reports the networks it finished. The complete result replaces it when the step ends."""
    if args.result:
        _write_result(args.result, dict(result, partial=True))


def _write_result(path: str, result: dict) -> None:
    from core.atomic import atomic_path

    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1, default=str))


def step_core(args: argparse.Namespace) -> dict:
    """`python -m core ...` in this (import-blocked) process; its stdout is the step's log."""
    from core.__main__ import main

    return {"rc": main(args.rest), "ok": True}


STEPS = ("env", "parity", "onnx", "bench-eager", "bench-cudagraph", "bench-compile", "bench-onnx", "engine",
         "latency")


def plan(dry: bool, device: str) -> list[tuple[str, float, list[str]]]:
    """(step, time limit s, argv after `--step`) in run order; limits sum to <= TOTAL_BUDGET_S on a GPU."""
    size = "tiny" if dry else "official"
    bench = ["core", "--", "bench", "render", "--size", size, "--device", device]
    if dry:
        b_all, frames = ["--batches", "1", "--frames", "1"], []
    else:
        b_all, frames = ["--batches", "1,4,8,16", "--frames", "16"], []
    precisions = "fp32" if dry else "fp32,fp16,bf16"
    steps = [
        ("env", 30, ["env"]),
        ("parity", 60, ["parity", "--precisions", "fp32,bf16" if dry else "fp32,fp16,bf16"]),
        ("onnx", 75, ["onnx"]),
        ("bench-eager", 45, [*bench, "--backends", "eager", "--precisions", precisions, *b_all, *frames]),
        # the dry run leaves out the eager baseline where a CPU cannot run the backend anyway (it is the slow part)
        ("bench-cudagraph", 45, [*bench, "--backends", "cudagraph", "--precisions", precisions, *b_all,
                                 *(["--no-baseline"] if dry else [])]),
        # compile: ~2 networks x 2 batch sizes of inductor + Triton builds on first use; the batch-1 row is written
        # before the batch-8 recompile starts, so a timeout there still keeps it
        ("bench-compile", 20 if dry else 95, [*bench, "--backends", "compile", "--precisions",
                                               "fp32" if dry else "fp16", "--batches", "1" if dry else "1,8",
                                               *(["--no-baseline"] if dry else [])]),
        # the GPU machine's onnxruntime is a CPU build: one frame per row is all the budget allows there
        ("bench-onnx", 55, [*bench, "--backends", "onnx", "--precisions", "fp32" if dry else "fp32,fp16",
                            "--batches", "1", "--frames", "1"]),
        ("engine", 40, ["core", "--", "bench", "engine", "--size", size, "--device", device,
                        *(["--frames", "8"] if dry else [])]),
    ]
    # the latency bench: through a PulseAudio virtual microphone where sounddevice and pulseaudio exist; the GPU
    # machine has neither, so there (and in the dry run) the voice enters as a real-time audio file: every part
    # but the audio device is measured
    steps.append(("latency", 35, ["core", "--", "bench", "latency", "--size", "tiny" if dry else "official",
                                  "--device", device, "--motion", "retarget", "--onsets", "5", "--no-store",
                                  "--input", "file" if dry else "auto"]))
    if dry:  # a shared CPU is slower than the GPU machine; compile keeps its short limit (it exercises the kill)
        steps = [(n, limit if n == "bench-compile" else limit * DRY_SLACK, argv) for n, limit, argv in steps]
    return steps


class _Stopped(Exception):
    """SIGTERM reached the driver (e.g. the outer `timeout` in gpu-check.sh): stop the step, keep the report."""


def _on_sigterm(signum, frame) -> None:
    raise _Stopped()


def run_step(cmd: list[str], limit: float, env: dict | None = None) -> tuple[str, str]:
    """Run one step's command with a hard limit -> (status ok | failed | timeout | interrupted, its output).

    The step runs in its own process group and the whole group is killed at the limit: torch.compile's worker
    processes, onnxruntime's or an engine's helpers must not outlive their step and hold CPU cores or GPU memory
    while the next step is timed. What the step printed before it was stopped is kept.
    """
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        return ("ok" if proc.returncode == 0 else "failed"), out or ""
    except subprocess.TimeoutExpired:
        status = "timeout"
    except BaseException:  # _Stopped, Ctrl-C: stop the step's processes before the driver goes
        status = "interrupted"
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group ended on its own just now
        pass
    try:  # everything printed so far (communicate keeps what it read before the timeout)
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired as exc:  # a process of the group that escaped the kill holds the pipe
        out = _text(exc.stdout) + "\n[gpu-check] output cut: a process of the step still held its pipe"
        proc.kill()
    return status, out or ""


def run_all(args: argparse.Namespace, steps: list[tuple[str, float, list[str]]] | None = None) -> int:
    """Run the plan (or `steps`, same form). Only gpu-check.json and gpu-check.md are written to the output folder:
    the device tool brings back at most 8 files from it, so step results, bench rows and caches (ONNX exports of
    ~0.5 GB, inductor and Triton caches) live in a scratch folder that is removed at the end."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="headcast-gpucheck-"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.dry_run:
        env["HEADCAST_BLOCK_IMPORTS"] = ",".join(BLOCKED)
    for var, folder in (("HEADCAST_CACHE_DIR", "cache"), ("HEADCAST_WEIGHTS_DIR", "weights"),
                        ("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
        env.setdefault(var, str(scratch / folder))
    # a step killed at its limit cannot clean up its temporary folders (the kit's 0.5 GB of checkpoints per
    # bench step): they go under the scratch folder, which the driver removes
    (scratch / "tmp").mkdir()
    env["TMPDIR"] = str(scratch / "tmp")
    device = "cpu" if args.dry_run else args.device
    budget = args.budget_s if not args.dry_run or args.budget_s != TOTAL_BUDGET_S else TOTAL_BUDGET_S * DRY_SLACK
    t_start = time.perf_counter()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry_run": args.dry_run, "device": device,
                    "budget_s": budget, "steps": []}
    only = set(args.only.split(",")) if args.only else None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for name, limit, argv in (plan(args.dry_run, device) if steps is None else steps):
            if only and name not in only:
                continue
            left = budget - (time.perf_counter() - t_start)
            limit = min(limit, left)
            entry: dict = {"name": name, "limit_s": round(limit, 1)}
            if not argv:
                entry.update(status="skipped", reason="not applicable")
                report["steps"].append(entry)
                continue
            if limit < 5:
                entry.update(status="skipped", reason="total budget spent")
                report["steps"].append(entry)
                continue
            result_file = scratch / f"{name}.json"
            rows = scratch / f"{name}-rows.json"
            cmd = [sys.executable, "-m", "core.bench.gpucheck", "--step", argv[0], "--result", str(result_file),
                   "--device", device, *(["--dry-run"] if args.dry_run else []), *argv[1:]]
            if name.startswith("bench-"):
                cmd += ["--json", str(rows), "--budget-s", str(max(1.0, limit * 0.6))]
            print(f"[gpu-check] {name}: limit {limit:.0f} s", flush=True)
            t0 = time.perf_counter()
            status, log = run_step(cmd, limit, env)
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            entry["log_tail"] = log[-6000:]
            if result_file.is_file():
                entry["result"] = json.loads(result_file.read_text())
                if status == "ok" and not entry["result"].get("ok", True):
                    status = "failed"
            if rows.is_file():
                entry["rows"] = json.loads(rows.read_text())
            entry["status"] = status
            report["steps"].append(entry)
            print(f"[gpu-check] {name}: {status} in {entry['seconds']:.1f} s", flush=True)
            _write_report(out, report)
            if status == "interrupted":
                break
    except _Stopped:  # between two steps: the report so far is written below
        report["interrupted"] = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        report["total_s"] = round(time.perf_counter() - t_start, 1)
        _write_report(out, report)
        try:
            shutil.rmtree(scratch)
        except OSError as exc:
            print(f"[gpu-check] could not remove the scratch folder {scratch}: {exc}", flush=True)
    print((out / "gpu-check.md").read_text())
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["steps"]) else 1


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _write_report(out: Path, report: dict) -> None:
    from core.atomic import atomic_path

    with atomic_path(out / "gpu-check.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=str))
    with atomic_path(out / "gpu-check.md", suffix=".md") as tmp:
        tmp.write_text(markdown(report))


def markdown(report: dict) -> str:
    env = next((s.get("result", {}) for s in report["steps"] if s["name"] == "env"), {})
    lines = [f"# GPU check {'(DRY RUN, CPU, tiny sizes) ' if report['dry_run'] else ''}{report['started']}", "",
             f"GPU: {env.get('gpu', 'none')}; torch {env.get('torch', '?')} (CUDA {env.get('cuda', '-')}); "
             f"onnxruntime {env.get('onnxruntime', '?')} {env.get('onnxruntime_providers', '')}; "
             f"transformers {env.get('transformers', '?')}; total {report.get('total_s', '?')} s of "
             f"{report['budget_s']:.0f} s", "", "| step | status | seconds | limit s |", "| --- | --- | ---: | ---: |"]
    for s in report["steps"]:
        lines.append(f"| {s['name']} | {s['status']}{': ' + s['reason'] if s.get('reason') else ''} | "
                     f"{s.get('seconds', '')} | {s.get('limit_s', '')} |")
    for s in report["steps"]:
        res = s.get("result") or {}
        if s["name"] in ("parity", "onnx") and res.get("rows"):
            partial = " (PARTIAL: the step stopped before its end)" if res.get("partial") else ""
            lines += ["", f"## {s['name']} ({res.get('reference', 'vs eager fp32')}){partial}", "",
                      "| precision / provider | network | output | max abs | rel l2 | ok |",
                      "| --- | --- | --- | ---: | ---: | --- |"]
            for r in res["rows"]:
                if "skipped" in r:
                    lines.append(f"| {r['precision']} | skipped: {r['skipped']} | | | | |")
                    continue
                lines.append(f"| {r.get('precision', r.get('provider', ''))} | {r['network']} | {r['output']} | "
                             f"{r['max_abs']:.2e} | {r['rel_l2']:.2e} | {'yes' if r['ok'] else 'NO'} |")
    bench_rows = [r for s in report["steps"] if s["name"].startswith("bench-") for r in s.get("rows", [])]
    if bench_rows:
        lines += ["", "## Render bench (ms per frame; x base = vs eager fp32 batch 1 of the same step)", "",
                  "| backend | precision | batch | total ms | fps | x base | max abs vs fp32 | PSNR dB |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in bench_rows:
            if "ms" not in r:
                lines.append(f"| {r['backend']} | {r['precision']} | {r.get('batch', '')} | "
                             f"{r.get('error', r.get('skipped', ''))[:80]} | | | | |")
                continue
            psnr = "inf" if math.isinf(r["psnr_db"]) else f"{r['psnr_db']:.1f}"
            lines.append(f"| {r.get('name', r['backend'])} | {r['precision']} | {r['batch']} | "
                         f"{r['ms']['total']:.2f} | {r['fps']:.1f} | {r['x_base']:.2f} | {r['max_abs']:.2e} | "
                         f"{psnr} |")
    for s in report["steps"]:
        if s["name"] in ("engine", "latency") or s["status"] in ("failed", "timeout"):
            lines += ["", f"## {s['name']} ({s['status']}): output tail", "", "```",
                      *s.get("log_tail", "")[-2500:].splitlines(), "```"]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.bench.gpucheck", description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, app packages blocked")
    p.add_argument("--out", default="gpu-check-out", help="folder for gpu-check.json / .md and step files")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=TOTAL_BUDGET_S, help="total time limit (default 480)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(STEPS)}")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--precisions", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.step is None:
        return run_all(args)
    _install_blocker()
    sys.path.insert(0, str(REPO))
    if args.rest and args.rest[0] == "--":
        args.rest = args.rest[1:]
    fn = {"env": step_env, "parity": step_parity, "onnx": step_onnx, "core": step_core}[args.step]
    result = fn(args)
    if args.result:
        _write_result(args.result, result)
    return 0 if result.get("ok", True) and result.get("rc", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
