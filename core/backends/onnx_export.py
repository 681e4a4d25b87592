"""ONNX export of LivePortrait's networks, cached next to the weights and keyed by what went into the file.

Exporter: torch's TorchScript-based `torch.onnx.export(..., dynamo=False)` at opset 20. Measured here (torch 2.13,
onnxruntime 1.32 CPU): both exporters give the same graph numerics for the warping network (max abs 4e-7 vs
eager), but the TorchScript one exports the tiny warping network in 0.9 s against 7.3 s for the dynamo one and
needs no onnxscript. Opset 20 is the first whose GridSample takes 5-D input (the warping network samples a
3-D feature volume); onnxruntime's CPU kernel runs it. Execution providers that lack a 5-D GridSample kernel
(CUDA and TensorRT in the versions seen) get those nodes placed on the CPU provider by onnxruntime's own graph
partitioning, so no manual graph split is needed for correctness; the split costs two host round trips per
frame, which the GPU check measures.

Cache key = sha256 over the network's parameters and buffers (names, dtypes, shapes, bytes) + the export settings
+ the torch version + the source of the code that builds the graph (core/liveportrait and this module), so new
weights, a new precision, a new exporter or a fixed network never reuse a stale file. The code digest also stands
in the file name: exports made by other code versions are deleted when a new one is written (they can never be
used again), while exports of other weights under the same code stay. Files are written through core.atomic, so
an interrupted export never leaves a file that looks finished.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from core.atomic import atomic_path
from core.liveportrait import LivePortraitModels

log = logging.getLogger(__name__)

OPSET = 20  # GridSample on 5-D input needs opset >= 20
MOTION_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
NETWORKS = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator",
            "stitching", "lip", "eye")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class OnnxExportError(RuntimeError):
    """The ONNX exporter failed for a network; the message names the network and what to do."""


@dataclass(frozen=True)
class ExportSettings:
    opset: int = OPSET
    precision: str = "fp32"  # fp32 | fp16 (fp16: export on CUDA for the CUDA / TensorRT providers)
    exporter: str = "torchscript"  # torchscript | dynamo


# The wrappers are put in eval mode when built: the exporter restores the exported module's training flag after
# the export, recursively, so a wrapper left in (default) training mode would switch BatchNorm in the wrapped
# network to batch statistics for every later eager call (seen: max abs 0.78 on the warped features).


class _Warp(nn.Module):
    """The warping network with a (1 or B)-batch feature volume broadcast to the keypoints' batch.

    The renderer passes one portrait's volume for a whole batch; broadcasting inside the graph avoids B copies of
    8 MB (official fp32) per batch on the way in. Outputs in a fixed order: out, occlusion_map, deformation.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, feature_3d, kp_driving, kp_source):
        feature_3d = feature_3d.expand(kp_driving.shape[0], -1, -1, -1, -1)
        out = self.net(feature_3d, kp_driving, kp_source)
        return out["out"], out["occlusion_map"], out["deformation"]


class _Motion(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image):
        out = self.net(image)
        return tuple(out[k] for k in MOTION_KEYS)


def _spec(models: LivePortraitModels, name: str, device: torch.device, dtype: torch.dtype, batch: int = 1):
    """(module to export, example inputs, input names, output names) for one network. The inputs come from a
    local generator (fixed seed), so callers such as the GPU check can use them as test inputs too."""
    cfg = models.config
    net = getattr(models, name)
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(device, dtype)

    image = rand(batch, 3, 256, 256)
    if name == "appearance_feature_extractor":
        return net, (image,), ["image"], ["feature_3d"]
    if name == "motion_extractor":
        return _Motion(net).eval(), (image,), ["image"], list(MOTION_KEYS)
    if name == "warping_module":
        a = cfg.appearance
        side = 256 // 2**a.num_down_blocks
        feature = rand(1, a.reshape_channel, a.reshape_depth, side, side)
        kp = rand(max(2, batch), cfg.warping.num_kp, 3) - 0.5
        return _Warp(net).eval(), (feature, kp + 0.01, kp), ["feature_3d", "kp_driving", "kp_source"], \
            ["out", "occlusion_map", "deformation"]
    if name == "spade_generator":
        s = cfg.spade
        ch = min(s.max_features, s.block_expansion * 2**s.num_down_blocks)
        side = 256 // 2**cfg.appearance.num_down_blocks
        return net, (rand(batch, ch, side, side),), ["feature"], ["image"]
    if name in ("stitching", "lip", "eye"):
        return net, (rand(batch, getattr(cfg, name).input_size),), ["x"], ["y"]
    raise ValueError(f"unknown LivePortrait network '{name}' (one of {', '.join(NETWORKS)})")


def example_inputs(models: LivePortraitModels, name: str, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Deterministic example inputs of the right shapes for one network (the export's tracing inputs)."""
    return _spec(models, name, torch.device(device), dtype)[1]


def weights_hash(module: nn.Module) -> str:
    """sha256 over every parameter and buffer: names, dtypes, shapes and bytes (~1 s for the 520 MB model)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        value = value.detach().to("cpu").contiguous()
        h.update(f"{key}|{value.dtype}|{tuple(value.shape)}".encode())
        if value.numel():
            h.update(value.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """The user cache (HEADCAST_CACHE_DIR overrides), used when the weights' own folder is not writable."""
    env = os.environ.get("HEADCAST_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("headcast"))


def cache_dir_for(models: LivePortraitModels) -> Path:
    """`<weights root>/liveportrait/onnx` for installed weights (next to them); the user cache otherwise."""
    root = getattr(models, "root", None)
    if root is not None:
        folder = Path(root) / "liveportrait" / "onnx"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError as exc:
            log.warning("cannot write ONNX exports next to the weights (%s); using the user cache", exc)
    return default_cache_dir() / "onnx"


@functools.cache
def code_digest() -> str:
    """sha256 over the source of the networks (core/liveportrait) and of the export wrappers (this file)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve()
    for path in (*sorted((here.parent.parent / "liveportrait").glob("*.py")), here):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _prefix(name: str, settings: ExportSettings) -> str:
    return f"{name}-{settings.precision}-op{settings.opset}-"


def export_path(models: LivePortraitModels, name: str, settings: ExportSettings, cache_dir: Path) -> Path:
    net = getattr(models, name)
    key = hashlib.sha256(json.dumps({"weights": weights_hash(net), "settings": asdict(settings),
                                     "config": models.config.name, "code": code_digest(),
                                     "torch": torch.__version__.split("+")[0]}, sort_keys=True).encode())
    return Path(cache_dir) / f"{_prefix(name, settings)}c{code_digest()[:8]}-{key.hexdigest()[:20]}.onnx"


def prune_stale_exports(path: Path, name: str, settings: ExportSettings) -> list[Path]:
    """Delete this network's exports (same precision and opset) made by another code version -> what was deleted.
    A file that cannot be deleted is left (the next export tries again)."""
    current = f"{_prefix(name, settings)}c{code_digest()[:8]}-"
    removed = []
    for old in path.parent.glob(f"{_prefix(name, settings)}*.onnx"):
        if not old.name.startswith(current):
            try:
                old.unlink()
                removed.append(old)
            except OSError as exc:
                log.warning("could not delete the stale ONNX export %s: %s", old, exc)
    return removed


def export_network(models: LivePortraitModels, name: str, settings: ExportSettings | None = None,
                   cache_dir: Path | None = None, device: torch.device | str | None = None) -> Path:
    """Export one network (batch axis dynamic) unless a file with the same key exists; -> its path.

    The network is exported as it is (its device); `device` moves it there for the export only when given.
    fp16 export needs the network's kernels in fp16, i.e. a CUDA device.
    """
    settings = settings or ExportSettings()
    if settings.precision not in DTYPES:
        raise ValueError(f"ONNX export precision must be one of {', '.join(DTYPES)}, got {settings.precision!r}")
    cache_dir = Path(cache_dir) if cache_dir is not None else cache_dir_for(models)
    path = export_path(models, name, settings, cache_dir)
    if path.is_file():
        return path
    net = getattr(models, name)
    dtype = DTYPES[settings.precision]
    param = next(net.parameters())
    if param.dtype != dtype or (device is not None and param.device != torch.device(device)):
        raise OnnxExportError(f"export of {name}: the network is {param.dtype} on {param.device}, the settings ask "
                              f"for {dtype}{f' on {device}' if device else ''}; convert the models first")
    module, inputs, in_names, out_names = _spec(models, name, param.device, dtype)
    axes = {n: {0: "batch"} for n in (*in_names, *out_names)}
    if name == "warping_module":
        axes["feature_3d"] = {0: "feature_batch"}
    log.info("exporting %s to ONNX (%s, opset %d) -> %s", name, settings.precision, settings.opset, path)
    try:
        with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
            if settings.exporter == "dynamo":
                dims = {n: {0: torch.export.Dim("batch", min=1, max=1024)} for n in in_names}
                if name == "warping_module":
                    dims["feature_3d"] = {0: torch.export.Dim("feature_batch", min=1, max=1024)}
                torch.onnx.export(module, inputs, str(tmp), input_names=in_names, output_names=out_names,
                                  opset_version=settings.opset, dynamo=True, dynamic_shapes=dims, verbose=False)
            else:
                torch.onnx.export(module, inputs, str(tmp), input_names=in_names, output_names=out_names,
                                  opset_version=settings.opset, dynamo=False, dynamic_axes=axes,
                                  do_constant_folding=True)
    except Exception as exc:
        raise OnnxExportError(f"ONNX export of the {name} network failed ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); use another --backend "
                              "(eager) or report this with your torch version") from exc
    prune_stale_exports(path, name, settings)
    return path


def export_all(models: LivePortraitModels, settings: ExportSettings | None = None,
               cache_dir: Path | None = None) -> dict[str, Path]:
    """Every network (all five, the retargeting MLPs as three files) -> path of its ONNX file."""
    return {name: export_network(models, name, settings, cache_dir) for name in NETWORKS}
