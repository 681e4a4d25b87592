"""Make a motion source by name: `retarget` (LivePortrait weights only), `dit` (a model trained with
`python -m training`), `joyvasa` (JoyVASA's published generator). `auto` picks the DiT when one is installed,
else the retargeting source."""

from __future__ import annotations

from pathlib import Path

from core.motion.source import MotionSettings, MotionSource

KINDS = ("auto", "retarget", "dit", "joyvasa")


class MotionSourceUnavailable(RuntimeError):
    """The chosen motion source is not part of this build (its module is missing)."""


def make_motion_source(kind: str = "auto", synthetic: str | None = None, checkpoint: str | Path | None = None,
                       settings: MotionSettings | None = None, weights_root: str | Path | None = None,
                       device: str = "cpu", offline: bool = False) -> MotionSource:
    """`synthetic` ('tiny' / 'full'): stand-in weights for the model-based sources, for development.
    `offline`: rendering a file, not live; JoyVASA then runs its native 100-frame windows and 50 steps."""
    settings = settings or MotionSettings()
    if kind not in KINDS:
        raise ValueError(f"unknown motion source {kind!r}; choose one of {', '.join(KINDS)}")
    if checkpoint is None and kind in ("auto", "dit") and weights_root is not None:
        from core.motion.checkpoint import installed_motion_model

        if installed_motion_model(weights_root).is_file():  # `python -m training install` put one there
            checkpoint = installed_motion_model(weights_root)
    if kind == "auto":
        kind = "dit" if checkpoint is not None else "retarget"
    if kind == "retarget":
        from core.motion.retarget_source import RetargetMotionSource

        return RetargetMotionSource(settings=settings)
    if kind == "dit":
        from core.motion.generator import DiTMotionSource

        return DiTMotionSource.create(checkpoint=checkpoint, synthetic=synthetic, settings=settings, device=device)
    try:
        from core.motion.joyvasa.source import JoyVASAMotionSource
    except ModuleNotFoundError as exc:
        if exc.name not in ("core.motion.joyvasa", "core.motion.joyvasa.source"):
            raise
        raise MotionSourceUnavailable("the JoyVASA motion source is not part of this build (core/motion/joyvasa/ "
                                      "is missing); use --motion retarget or --motion dit") from None
    return JoyVASAMotionSource.create(weights_root=weights_root, synthetic=synthetic, settings=settings,
                                      device=device, native=offline)
