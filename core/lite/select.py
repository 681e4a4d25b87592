"""Which renderer runs: `full`, `lite`, or `auto` = full if it reaches the frame rate on this device, else lite.

`auto` measures instead of guessing from the device name: one warm-up batch, then timed batches (half a
second's worth, at least one) of the full renderer with the user's portrait and networks. The figure is
remembered in the cache folder (`renderer-speed.json`, keyed by device, dtype, backend, network size, weights and torch
version), so the measurement (two frames, ~20 s, on an idle 2-core CPU at official size; about a second on a GPU)
runs once per machine and model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import layout
from core.atomic import atomic_path
from core.lite import RENDERERS
from core.lite.atlas import cache_dir, models_digest
from core.timebase import FPS

log = logging.getLogger(__name__)

SPEED_FILE = "renderer-speed.json"
HEADROOM = 1.2  # the full renderer must beat the frame rate by this factor: motion and sinks share the frame


@dataclass(frozen=True)
class RendererChoice:
    kind: str  # "full" | "lite"
    reason: str  # one sentence the CLI prints and the app shows
    full_fps: float | None = None  # the full renderer's measured frames per second (auto only)
    remembered: bool = False  # the figure came from an earlier measurement


def speed_key(renderer) -> str:
    cfg = renderer.models.config
    return (f"{renderer.spec.describe()}|{renderer.spec.dtype}|{renderer.backend.name}|"
            f"{getattr(cfg, 'name', 'custom')}|{models_digest(renderer.models)}|torch {torch.__version__}|"
            f"{torch.get_num_threads()} threads")


def _device_name(renderer) -> str:
    """'CPU' / 'NVIDIA GeForce RTX 4090' for sentences people read: the dtype in `describe()` is for logs."""
    return renderer.spec.describe().rsplit(" (", 1)[0]


def measure_full_fps(renderer, portrait, batch: int = 1, min_timed_s: float = 0.5) -> float:
    """Frames per second of the full renderer on this device (batch rows). The first batch is never timed: it
    carries one-off costs (CUDA context, cuDNN autotuning, lazy allocations) that on a GPU can exceed a second,
    which would make a 300 fps GPU look like a 1 fps one. Then batches are timed until `min_timed_s` has passed
    (at least one: a single official-size frame on a CPU takes seconds), and the median is the figure."""
    motion = np.zeros((batch, layout.MOTION_DIM), np.float32)
    motion[:, layout.YAW] = 2.0  # some motion: the same work as a live frame
    renderer.render(portrait, motion)
    times: list[float] = []
    while not times or (sum(times) < min_timed_s and len(times) < 50):
        t0 = time.perf_counter()
        renderer.render(portrait, motion)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def _load_speeds(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s); measuring again", path, exc)
        return {}


def choose_renderer(mode: str, renderer, portrait, fps: int = FPS, batch: int = 1,
                    root: str | Path | None = None, on_note: Callable[[str], None] | None = None) -> RendererChoice:
    """`mode` full | lite | auto. `renderer`/`portrait`: the full renderer and a portrait it prepared (auto
    times them). `batch`: frames per render call live (GPUs batch; CPUs gain nothing from it). `on_note(text)`
    hears, before a measurement, what is being timed (two official frames take ~20 s on a CPU: say why)."""
    if mode not in RENDERERS:
        raise ValueError(f"renderer {mode!r}: choose one of {', '.join(RENDERERS)}")
    if mode != "auto":
        return RendererChoice(mode, f"{mode} renderer chosen explicitly")
    path = Path(root or cache_dir()) / SPEED_FILE
    key = f"{speed_key(renderer)}|batch {batch}"
    speeds = _load_speeds(path)
    entry = speeds.get(key)
    remembered = isinstance(entry, dict) and isinstance(entry.get("fps"), (int, float))
    if remembered:
        full_fps = float(entry["fps"])
    else:
        if on_note is not None:
            on_note(f"auto: timing the full renderer on {_device_name(renderer)} once (remembered for later "
                    "starts)…")
        full_fps = measure_full_fps(renderer, portrait, batch)
        speeds[key] = {"fps": full_fps, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            with atomic_path(path, suffix=".json") as tmp:
                tmp.write_text(json.dumps(speeds, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:  # not remembering is no reason to stop: the next start measures again
            log.warning("could not remember the renderer speed in %s: %s", path, exc)
    how = "remembered" if remembered else "measured"
    rate = f"{full_fps:.1f} fps" if full_fps >= 1 else f"{1 / max(full_fps, 1e-9):.1f} s a frame"
    device = _device_name(renderer)
    if full_fps >= fps * HEADROOM:
        return RendererChoice("full", f"full renderer: {how} {rate} on {device}, enough for {fps} fps",
                              full_fps, remembered)
    return RendererChoice("lite", f"lite mode: the full renderer {how} {rate} on {device}, below the {fps} fps "
                                  "needed", full_fps, remembered)


def resolve_renderer(mode: str, full, image, grid=None, on_progress=None, cancel=None, batch: int = 1,
                     source_name: str | None = None, store=None, face: int | None = None, on_note=None, lite=None):
    """The renderer to run for `mode` and the choice with its reason: `full` itself, or a LiteRenderer whose
    atlas for `image` is loaded (built first if missing, reporting `on_progress(done, total)`; `cancel()`
    stops a build). `lite`: a LiteRenderer of an earlier start to reuse when it renders with `full` on the same
    grid (its atlases and frame pools stay loaded across starts). For the CLI and the app alike; call it off the
    GUI thread."""
    from core.lite.renderer import LiteRenderer

    choice = choose_renderer(mode, full, full.prepare(image, source_name, face=face), batch=batch, on_note=on_note)
    if choice.kind == "full":
        return full, choice
    if lite is None or lite.full is not full or (grid is not None and lite.grid != grid):
        lite = LiteRenderer(full, grid, store)
    lite.prepare(image, source_name, on_progress=on_progress, cancel=cancel, face=face)
    return lite, choice
