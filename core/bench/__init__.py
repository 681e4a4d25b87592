"""`python -m core bench render|motion|engine|lite`: speed figures measured in one run, printed as tables."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "render": ("core.bench.render", "renderer stages, batch 1/8, eager vs torch.compile (fp16 on CUDA)"),
    "motion": ("core.bench.motion", "wav2vec2 per hop and DiT per window over steps x window sizes"),
    "engine": ("core.bench.engine", "the streaming engine vs a reference-like configuration"),
    "lite": ("core.bench.lite", "lite renderer vs full per frame at 512x512 and 1280x720, atlas build and size"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True)
    for name, (module_name, help_text) in BENCHES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module_name).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.set_defaults(missing=module_name)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "missing", None):
        print(f"benchmark '{args.bench}' is not available in this build ({args.missing} is missing)")
        return 2
    return int(importlib.import_module(BENCHES[args.bench][0]).main(args) or 0)
