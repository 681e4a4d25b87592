"""Pick the compute device and precision once, honestly.

Real time is a GPU property: on CPU the official models take seconds per frame, and we say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceSpec:
    device: torch.device
    dtype: torch.dtype  # compute dtype of the renderer networks

    @property
    def storage_dtype(self) -> torch.dtype:
        """The dtype the networks' weights and tensors are held in: bf16 runs as autocast over fp32 weights
        (measured: several 3-D ops, e.g. avg_pool3d, have no bf16 CPU kernel in torch 2.13)."""
        return torch.float32 if self.dtype == torch.bfloat16 else self.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        if self.is_cuda:
            name = torch.cuda.get_device_name(self.device)
        elif self.device.type == "mps":
            name = "Apple GPU (MPS)"
        else:
            name = "CPU"
        return f"{name} ({str(self.dtype).removeprefix('torch.')})"


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 convolutions are emulated and usually slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name: str = "auto", half: bool | None = None, precision: str | None = None,
                official_size: bool = True) -> DeviceSpec:
    """`name`: auto | cpu | cuda | cuda:N | mps. `half`: fp16 compute (default: on for CUDA only).
    `official_size`: False for tiny test networks, which run fast on a CPU (no slowness warning then).

    `precision` (fp32 | fp16 | bf16 | auto) overrides `half`: bf16 runs on CPUs and on CUDA; fp16 needs a GPU.
    """
    if precision not in (None, "auto") and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "CUDA was requested but PyTorch sees no CUDA device. Install the NVIDIA driver and a CUDA build "
            "of torch, or choose device 'cpu'."
        )
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_native_bf16():
            log.warning("bf16 on a CPU without AVX512-BF16/AMX: emulated, expect it to be slower than fp32")
        return DeviceSpec(device=device, dtype=torch.bfloat16)
    if precision in ("fp16", "fp32"):
        half = precision == "fp16"
    if half is None:
        half = device.type == "cuda"
    if device.type == "cpu":
        if half:
            raise ValueError("fp16 is not supported on CPU; use half=False or precision bf16.")
        if official_size:
            log.warning("Running on CPU: the official models take seconds per frame here; real time needs a GPU.")
    return DeviceSpec(device=device, dtype=torch.float16 if half else torch.float32)
