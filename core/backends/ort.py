"""One exported network in an onnxruntime session, fed and read through IOBinding with torch tensors.

Why IOBinding on every device: inputs and outputs stay torch tensors (no numpy round trip, no per-call output
allocation: output buffers are made once per input shape and reused), and the same code path runs on the CPU
here and on CUDA there, so the CPU tests exercise what the GPU runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers_for(device: torch.device, fp16: bool, cache_dir: Path | None = None) -> list:
    """TensorRT > CUDA > CPU for a CUDA device (whichever the installed onnxruntime has); CPU otherwise."""
    avail = available_providers()
    chosen: list = []
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        if "TensorrtExecutionProvider" in avail:
            opts = {"device_id": index, "trt_fp16_enable": fp16}
            if cache_dir is not None:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
            chosen.append(("TensorrtExecutionProvider", opts))
        if "CUDAExecutionProvider" in avail:
            chosen.append(("CUDAExecutionProvider", {"device_id": index}))
    chosen.append("CPUExecutionProvider")
    return chosen


class OrtNetwork:
    """`net(*tensors) -> tuple of output tensors`. Outputs are buffers reused by the next call with the same
    input shapes: consume (or copy) them before calling again."""

    def __init__(self, path: str | Path, device: torch.device, fp16: bool = False, threads: int | None = None,
                 cache_dir: Path | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.log_severity_level = 3  # placement notes (e.g. 5-D GridSample falling back to the CPU) stay quiet
        self.session = ort.InferenceSession(str(path), opts, providers=providers_for(device, fp16, cache_dir))
        self.provider = self.session.get_providers()[0]
        on_gpu = self.provider in GPU_PROVIDERS
        self.device = device if on_gpu else torch.device("cpu")  # where inputs and outputs live
        self.device_index = (self.device.index or 0) if on_gpu else 0
        self.io = "cuda" if on_gpu else "cpu"
        self.in_names = [i.name for i in self.session.get_inputs()]
        self.out_meta = [(o.name, o.shape, o.type) for o in self.session.get_outputs()]
        self.dtype = torch.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else torch.float32
        self._outputs: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def _output_buffers(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        key = tuple(tuple(t.shape) for t in inputs)
        bufs = self._outputs.get(key)
        if bufs is None:
            # The exporter leaves some output dims symbolic (e.g. after interpolations), so the shapes for these
            # inputs are learnt from one run with outputs allocated by onnxruntime, once per input shape.
            binding = self._bind_inputs(inputs)
            for name, _, _ in self.out_meta:
                binding.bind_output(name, self.io, self.device_index)
            self.session.run_with_iobinding(binding)
            bufs = []
            for (_, _, kind), value in zip(self.out_meta, binding.get_outputs()):
                dtype = torch.float16 if kind == "tensor(float16)" else torch.float32
                bufs.append(torch.empty(value.shape(), dtype=dtype, device=self.device))
            bufs = self._outputs[key] = tuple(bufs)
        return bufs

    def _bind_inputs(self, inputs: tuple[torch.Tensor, ...]):
        binding = self.session.io_binding()
        for name, t in zip(self.in_names, inputs):
            binding.bind_input(name, self.io, self.device_index, NUMPY[t.dtype], tuple(t.shape), t.data_ptr())
        return binding

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = tuple(t.to(self.device, self.dtype).contiguous() for t in inputs)
        if self.io == "cuda":  # onnxruntime runs on its own stream: the inputs torch wrote must be ready
            torch.cuda.current_stream(self.device).synchronize()
        outputs = self._output_buffers(inputs)
        binding = self._bind_inputs(inputs)
        for (name, _, _), t in zip(self.out_meta, outputs):
            binding.bind_output(name, self.io, self.device_index, NUMPY[t.dtype], tuple(t.shape), t.data_ptr())
        self.session.run_with_iobinding(binding)
        return outputs
