"""`--renderer full|lite|auto` and `--atlas LIPxEYE` for the CLI commands (`render`, `live`): one place that
chooses, says why, and builds a missing atlas with a tqdm bar before anything streams."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from core.lite import DEFAULT_GRID, RENDERERS


def add_renderer_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    lips, eyes = DEFAULT_GRID
    parser.add_argument("--renderer", choices=RENDERERS, default=default,
                        help="full: LivePortrait every frame; lite: frames from a per-portrait atlas rendered once "
                             "(real time on laptops without an NVIDIA GPU; no large head turns, only mouth, blinks "
                             "and small head motion); auto: lite when the full renderer measures below the frame "
                             f"rate here (default: {default})")
    parser.add_argument("--atlas", metavar="LIPxEYE",
                        help="lite-mode atlas grid: mouth levels x eye levels, e.g. 2x1 for a quick test (default: "
                             f"{lips}x{eyes} = {lips * eyes} full renders)")


class AtlasProgressBar:
    """`progress(done, total)` for an atlas build as a tqdm bar on stderr, made on the first report (nothing is
    shown when nothing builds) and closed at the end or by `close()`. Used by `render` and `live`."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", desc="lite atlas (full renderer, once per portrait)",
                             file=sys.stderr)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def select_renderer(args: argparse.Namespace, full, image: np.ndarray, source_name: str, batch: int = 1,
                    face: int | None = None):
    """The renderer the command runs (the full one, or a LiteRenderer whose atlas is ready), and the choice.
    A missing atlas is built here, in the foreground, with a tqdm bar (Ctrl-C leaves no partial file)."""
    from core.lite.atlas import AtlasError, AtlasSpec
    from core.lite.select import resolve_renderer

    try:
        grid = AtlasSpec.parse(args.atlas) if args.atlas else AtlasSpec()
    except ValueError as exc:
        raise AtlasError(f"--atlas: {exc}") from exc
    progress = AtlasProgressBar()
    try:
        renderer, choice = resolve_renderer(args.renderer, full, image, grid, progress, batch=batch,
                                            source_name=source_name, face=face,
                                            on_note=lambda text: print(f"renderer: {text}", file=sys.stderr,
                                                                       flush=True))
    finally:
        progress.close()
    print(f"renderer: {choice.reason}", file=sys.stderr)
    if choice.kind == "lite":
        atlas = renderer.prepare(image, source_name, face=face).atlas
        print(f"lite atlas: {atlas.path} ({grid.lip_levels}x{grid.eye_levels} frames, built in {atlas.build_s:.1f} s)",
              file=sys.stderr)
    return renderer, choice
