"""The backends themselves (see the package docstring); imported lazily through `core.backends`."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core.atomic import atomic_path
from core.device import DeviceSpec
from core.liveportrait import LivePortraitModels

from . import BACKENDS

log = logging.getLogger(__name__)

MAX_GRAPHS = 8


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no CUDA for cudagraph, no onnxruntime...); the message says what to use."""


def autocast(spec: DeviceSpec, net: Callable) -> Callable:
    """`net` under bf16 autocast when the spec asks for bf16 (weights stay fp32); `net` itself otherwise.

    The autocast weight-cast cache is off: it must not outlive a CUDA graph capture, and the per-call cast of
    the weights is what bf16 costs on the CPU anyway (measured by the bench, not assumed).
    """
    if spec.dtype != torch.bfloat16:
        return net

    def run(*args):
        with torch.autocast(spec.device.type, dtype=torch.bfloat16, cache_enabled=False):
            return net(*args)

    return run


class FaceBackend:
    """Eager: the modules themselves. Subclasses replace `warp` / `generate`."""

    kind = "eager"
    captures_per_batch = False  # True: the first call at each batch size captures/compiles (Renderer.warm_up)

    def __init__(self, models: LivePortraitModels, spec: DeviceSpec) -> None:
        self.models = models
        self.spec = spec
        self.warp: Callable[..., dict[str, torch.Tensor]] = autocast(spec, models.warping_module)
        self.generate: Callable[[torch.Tensor], torch.Tensor] = autocast(spec, models.spade_generator)

    @property
    def name(self) -> str:
        return self.kind


class CompileBackend(FaceBackend):
    kind = "compile"
    captures_per_batch = True

    def __init__(self, models: LivePortraitModels, spec: DeviceSpec) -> None:
        super().__init__(models, spec)
        self.warp = autocast(spec, torch.compile(models.warping_module))
        self.generate = autocast(spec, torch.compile(models.spade_generator))


@dataclasses.dataclass
class _Graphs:
    feature: torch.Tensor  # (1, C, D, H, W) static input
    kp_driving: torch.Tensor
    kp_source: torch.Tensor
    warped: torch.Tensor  # warp graph output = generate graph input
    image: torch.Tensor
    warp_graph: torch.cuda.CUDAGraph
    generate_graph: torch.cuda.CUDAGraph


class CudaGraphBackend(FaceBackend):
    kind = "cudagraph"
    captures_per_batch = True

    def __init__(self, models: LivePortraitModels, spec: DeviceSpec) -> None:
        if not spec.is_cuda:
            raise BackendUnavailable("the cudagraph backend needs a CUDA device; use --backend eager or onnx")
        super().__init__(models, spec)
        self._net_warp = autocast(spec, models.warping_module)
        self._net_generate = autocast(spec, models.spade_generator)
        self._graphs: dict[int, _Graphs] = {}
        self._by_output: dict[int, _Graphs] = {}
        self.warp, self.generate = self._warp, self._generate

    def _capture(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> _Graphs:
        b = kp_driving.shape[0]
        f = feature[:1].clone()
        xd, xs = kp_driving.clone(), kp_source.contiguous().clone()
        stream = torch.cuda.Stream(self.spec.device)
        stream.wait_stream(torch.cuda.current_stream(self.spec.device))
        with torch.cuda.stream(stream):  # warm-up off the capture: lazy inits, cuDNN algorithm choice
            for _ in range(2):
                self._net_generate(self._net_warp(f.expand(b, -1, -1, -1, -1), xd, xs)["out"])
        torch.cuda.current_stream(self.spec.device).wait_stream(stream)
        # one memory pool per batch size, shared by its two graphs, which always replay in capture order; pools
        # are not shared across batch sizes, whose replays interleave in any order
        gw, gg, pool = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph(), torch.cuda.graph_pool_handle()
        with torch.cuda.graph(gw, pool=pool):
            warped = self._net_warp(f.expand(b, -1, -1, -1, -1), xd, xs)["out"]
        with torch.cuda.graph(gg, pool=pool):
            image = self._net_generate(warped)
        g = self._graphs[b] = _Graphs(f, xd, xs, warped, image, gw, gg)
        self._by_output[warped.data_ptr()] = g
        log.info("captured CUDA graphs for batch %d", b)
        return g

    def _warp(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor):
        b = kp_driving.shape[0]
        g = self._graphs.get(b)
        if g is None:
            if len(self._graphs) >= MAX_GRAPHS:
                return self._net_warp(feature, kp_driving, kp_source)
            g = self._capture(feature, kp_driving, kp_source)
        g.feature.copy_(feature[:1])
        g.kp_driving.copy_(kp_driving)
        g.kp_source.copy_(kp_source)
        g.warp_graph.replay()
        return {"out": g.warped}

    def _generate(self, feature: torch.Tensor) -> torch.Tensor:
        g = self._by_output.get(feature.data_ptr())
        if g is None or g.warped.shape != feature.shape:
            g = self._graphs.get(feature.shape[0])
            if g is None:
                return self._net_generate(feature)
            g.warped.copy_(feature)
        g.generate_graph.replay()
        return g.image


class OnnxBackend(FaceBackend):
    kind = "onnx"

    def __init__(self, models: LivePortraitModels, spec: DeviceSpec, cache_dir: Path | None = None) -> None:
        try:
            from .onnx_export import ExportSettings, cache_dir_for, export_network
            from .ort import GPU_PROVIDERS, OrtNetwork, available_providers
        except ImportError as exc:
            raise BackendUnavailable(f"the onnx backend needs onnx and onnxruntime ({exc}); install them with "
                                     "`pip install onnx onnxruntime` (or onnxruntime-gpu)") from exc
        super().__init__(models, spec)
        gpu_ep = spec.is_cuda and any(p in available_providers() for p in GPU_PROVIDERS)
        if spec.dtype == torch.bfloat16:
            raise BackendUnavailable("the onnx backend runs fp32 (and fp16 on CUDA/TensorRT providers): "
                                     "onnxruntime has no bf16 convolution kernels; use precision fp32 with it")
        precision = "fp16" if gpu_ep and spec.dtype == torch.float16 else "fp32"
        export_dtype = torch.float16 if precision == "fp16" else torch.float32
        source = models
        if spec.storage_dtype != export_dtype:  # fp16 in torch, but onnxruntime has only its CPU provider here
            source = dataclasses.replace(models, warping_module=copy.deepcopy(models.warping_module).to(export_dtype),
                                         spade_generator=copy.deepcopy(models.spade_generator).to(export_dtype))
        cache = Path(cache_dir) if cache_dir is not None else cache_dir_for(models)
        settings = ExportSettings(precision=precision)
        paths = {n: export_network(source, n, settings, cache) for n in ("warping_module", "spade_generator")}
        fp16 = precision == "fp16"
        self._warp_net = OrtNetwork(paths["warping_module"], spec.device, fp16, cache_dir=cache)
        self._gen_net = OrtNetwork(paths["spade_generator"], spec.device, fp16, cache_dir=cache)
        self.provider = self._warp_net.provider
        self.precision = precision
        self.warp, self.generate = self._warp, self._generate

    @property
    def name(self) -> str:
        return f"onnx ({self.provider.removesuffix('ExecutionProvider')}, {self.precision})"

    def _back(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.spec.device, self.spec.storage_dtype)  # a no-op when onnxruntime already runs on the device

    def _warp(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor):
        if feature.shape[0] > 1 and feature.stride(0) == 0:  # one portrait's volume broadcast: send it once
            feature = feature[:1]
        out, occlusion, deformation = self._warp_net(feature, kp_driving, kp_source)
        return {"out": self._back(out), "occlusion_map": occlusion, "deformation": deformation}

    def _generate(self, feature: torch.Tensor) -> torch.Tensor:
        return self._back(self._gen_net(feature)[0])


def make_backend(kind: str, models: LivePortraitModels, spec: DeviceSpec, cache_dir: Path | None = None
                 ) -> FaceBackend:
    """Build a backend for models already on `spec`'s device and dtype. `auto` measures (once) and picks."""
    if kind == "auto":
        kind = choose_backend(models, spec, cache_dir)
    if kind == "eager":
        return FaceBackend(models, spec)
    if kind == "compile":
        return CompileBackend(models, spec)
    if kind == "cudagraph":
        return CudaGraphBackend(models, spec)
    if kind == "onnx":
        return OnnxBackend(models, spec, cache_dir)
    raise ValueError(f"unknown backend '{kind}'; choose one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------------- auto
def _choice_file() -> Path:
    from .onnx_export import default_cache_dir

    return default_cache_dir() / "backend-choice.json"


def _choice_key(models: LivePortraitModels, spec: DeviceSpec) -> str:
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "none"
    return "|".join((spec.describe(), models.config.name, f"torch {torch.__version__}", f"ort {ort_version}"))


def candidates_for(spec: DeviceSpec) -> list[str]:
    """Kinds worth trying: on the CPU, compile costs minutes of C++ builds on first use, so only eager / onnx."""
    return ["eager", "cudagraph", "onnx", "compile"] if spec.is_cuda else ["eager", "onnx"]


@torch.inference_mode()
def self_check(models: LivePortraitModels, spec: DeviceSpec, kinds: list[str], batch: int = 1, repeats: int = 2,
               cache_dir: Path | None = None) -> dict[str, dict]:
    """Run each kind on the same inputs as eager; -> {kind: {ok, seconds, max_abs, error}}.

    A kind passes if it runs, its output is finite and within 1e-3 (fp32) / 5e-2 (fp16, bf16) of eager's:
    a faster backend that draws a different face is not a faster backend.
    """
    gen = torch.Generator().manual_seed(0)
    cfg = models.config
    dtype = spec.storage_dtype
    image = torch.rand(1, 3, 256, 256, generator=gen).to(spec.device, dtype)
    feature = models.appearance_feature_extractor(image)
    kp_s = (torch.rand(1, cfg.warping.num_kp, 3, generator=gen) - 0.5).to(spec.device, dtype)
    kp_d = kp_s + 0.02 * torch.randn(batch, cfg.warping.num_kp, 3, generator=gen).to(spec.device, dtype)
    args = (feature.expand(batch, -1, -1, -1, -1), kp_d, kp_s.expand(batch, -1, -1))
    tol = 1e-3 if spec.dtype == torch.float32 else 5e-2
    results: dict[str, dict] = {}
    reference = None
    for kind in ["eager", *[k for k in kinds if k != "eager"]]:
        try:
            backend = make_backend(kind, models, spec, cache_dir)
            out = backend.generate(backend.warp(*args)["out"]).float().clone()  # warm-up and the checked output
            times = []
            for _ in range(repeats):
                _sync(spec)
                t = time.perf_counter()
                backend.generate(backend.warp(*args)["out"])
                _sync(spec)
                times.append(time.perf_counter() - t)
            if reference is None:
                reference = out
            err = float((out - reference).abs().max())
            ok = bool(torch.isfinite(out).all()) and err <= tol
            results[kind] = {"ok": ok, "seconds": min(times), "max_abs": err, "name": backend.name}
        except Exception as exc:  # a backend that cannot run here is a failed candidate, reported
            log.warning("backend %s failed its self-check: %s: %s", kind, exc.__class__.__name__, exc)
            results[kind] = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    return results


def choose_backend(models: LivePortraitModels, spec: DeviceSpec, cache_dir: Path | None = None) -> str:
    """The remembered choice for this device and model, or measure the candidates now and remember the winner."""
    path, key = _choice_file(), _choice_key(models, spec)
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring an unreadable backend choice file %s (%s)", path, exc)
        known = {}
    if key in known and known[key].get("backend") in BACKENDS:
        return known[key]["backend"]
    log.info("choosing the fastest renderer backend for %s (once; remembered in %s)", key, path)
    results = self_check(models, spec, candidates_for(spec), cache_dir=cache_dir)
    passed = {k: r["seconds"] for k, r in results.items() if r["ok"]}
    best = min(passed, key=passed.get) if passed else "eager"
    known[key] = {"backend": best, "results": results, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        with atomic_path(path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    except OSError as exc:
        log.warning("cannot remember the backend choice in %s (%s); it will be measured again", path, exc)
    log.info("backend %s chosen (%s)", best, ", ".join(f"{k}: {v * 1e3:.1f} ms" for k, v in passed.items()))
    return best


def _sync(spec: DeviceSpec) -> None:
    if spec.is_cuda:
        torch.cuda.synchronize(spec.device)
