"""`python -m core bench render|motion|engine|latency|lite`: speed figures measured in one run, printed as tables.
Light on purpose: `core.__main__` imports BENCHES for its help text."""

from __future__ import annotations

import argparse
import importlib

from core.cli import add_lazy_commands

BENCHES = {
    "render": ("core.bench.render", "renderer stages, batch 1/8, eager vs torch.compile (fp16 on CUDA)"),
    "motion": ("core.bench.motion", "wav2vec2 per hop and DiT per window over steps x window sizes"),
    "dit-stream": ("core.bench.streaming_dit", "streaming DiT per call over chunk x steps, folded guidance, "
                   "latency by construction, what a context cache could save"),
    "drive-smooth": ("core.bench.drive_smooth", "face-row smoothing for a webcam: jitter on a still face vs lag "
                     "on a turning head, for no smoothing, averages and one-euro settings"),
    "engine": ("core.bench.engine", "the streaming engine vs a reference-like configuration"),
    "latency": ("core.bench.latency", "mouth-to-frame latency measured through a PulseAudio virtual microphone"),
    "lite": ("core.bench.lite", "lite renderer vs full per frame at 512x512 and 1280x720, atlas build and size"),
}


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """Only the benchmark named in `argv` is imported (each pulls in torch; argument errors stay instant)."""
    sub = parser.add_subparsers(dest="bench", required=True)
    add_lazy_commands(sub, BENCHES, argv or [])


def main(args: argparse.Namespace) -> int:
    if getattr(args, "missing", None):
        print(f"benchmark '{args.bench}' is not available in this build ({args.missing} is missing)")
        return 2
    return int(importlib.import_module(BENCHES[args.bench][0]).main(args) or 0)
