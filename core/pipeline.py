"""Build the renderer and motion source from installed weights, or from stand-in weights for development.

Both the offline CLI and the app call `build_pipeline`, so they load models the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.device import pick_device
from core.face import FaceCropper
from core.liveportrait import LivePortraitConfig, build_liveportrait, load_liveportrait
from core.motion import make_motion_source
from core.motion.source import MotionSettings, MotionSource
from core.render import Renderer
from core.weights import WeightsRegistry

log = logging.getLogger(__name__)

SYNTHETIC_NOTICE = "SYNTHETIC WEIGHTS: random stand-in networks, the output is noise-like by design."


def build_pipeline(weights: str = "auto", motion: str = "auto", device: str = "auto",
                   motion_checkpoint: str | Path | None = None, settings: MotionSettings | None = None,
                   weights_root: str | Path | None = None, offline: bool = False, backend: str = "eager",
                   precision: str | None = None) -> tuple[Renderer, MotionSource]:
    """`weights`: 'auto' (installed weights), 'synthetic-tiny' or 'synthetic-full' (stand-ins of the test /
    official sizes). Raises MissingWeightsError / CheckpointError with the fixing command when weights are bad.
    `backend` / `precision`: the renderer's network backend (core.backends) and compute precision."""
    spec = pick_device(device, precision=precision, official_size=weights != "synthetic-tiny")
    registry = WeightsRegistry(weights_root)
    synthetic = None
    if weights.startswith("synthetic"):
        synthetic = weights.split("-", 1)[1] if "-" in weights else "tiny"
        config = LivePortraitConfig.tiny() if synthetic == "tiny" else LivePortraitConfig.official()
        models = build_liveportrait(config, seed=0)
        cropper = FaceCropper()
        log.warning(SYNTHETIC_NOTICE)
    else:
        models = load_liveportrait(registry.path("liveportrait"), device=spec.device)
        cropper = FaceCropper(registry.root if registry.installed("face") else None)
    renderer = Renderer(models, spec, cropper, backend=backend)
    source = make_motion_source(motion, synthetic=synthetic, checkpoint=motion_checkpoint, settings=settings,
                                weights_root=registry.root, device=str(spec.device), offline=offline)
    return renderer, source
