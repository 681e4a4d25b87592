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


def pick_device(name: str = "auto", half: bool | None = None, official_size: bool = True) -> DeviceSpec:
    """`name`: auto | cpu | cuda | cuda:N | mps. `half`: fp16 compute (default: on for CUDA only).
    `official_size`: False for tiny test networks, which run fast on a CPU (no slowness warning then)."""
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
    if half is None:
        half = device.type == "cuda"
    if device.type == "cpu":
        if half:
            raise ValueError("fp16 is not supported on CPU; use half=False.")
        if official_size:
            log.warning("Running on CPU: the official models take seconds per frame here; real time needs a GPU.")
    return DeviceSpec(device=device, dtype=torch.float16 if half else torch.float32)
