"""Per-frame network backends behind the renderer: warping + SPADE, the only networks that run every frame.

A backend gives the renderer two callables with the modules' own signatures: `warp(feature_3d, kp_driving,
kp_source) -> {"out": ...}` and `generate(feature) -> image`. Kinds:

* `eager`: the torch modules as they are.
* `compile`: `torch.compile` of both networks (needs a C++ compiler on the CPU, Triton on CUDA).
* `cudagraph`: both networks captured as CUDA graphs, one pair per batch size (captured on first use of that
  size, at most MAX_GRAPHS sizes; other sizes run eagerly). Removes the launch gaps of ~300 small kernels.
* `onnx`: the exported networks in onnxruntime, TensorRT EP > CUDA EP > CPU EP, whichever is installed.
* `auto`: the fastest of the kinds that pass a self-check against eager on this machine, measured once on first
  use and remembered in the user cache (keyed by device, precision, model size and library versions).

Outputs of `cudagraph` and `onnx` are buffers reused by the next call of the same batch size: the renderer
consumes them (paste-back) before its next call.
"""

from __future__ import annotations

# No torch import here: the CLI's argument parsing and the app's settings only need the names.
BACKENDS = ("auto", "eager", "compile", "cudagraph", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

_RUNTIME = ("BackendUnavailable", "FaceBackend", "autocast", "candidates_for", "choose_backend", "make_backend",
            "self_check")


def __getattr__(name: str):
    if name in _RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'core.backends' has no attribute {name!r}")
