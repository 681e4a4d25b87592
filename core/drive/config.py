"""The driving options of LivePortrait's `inference.py` (commit 1986663b), as one dataclass.

Defaults are the official command line's (its ArgumentConfig overrides InferenceConfig through partial fields):
relative motion on, expression-friendly, multiplier 1, animation region "all", stitching on, no eye or lip
retargeting, no lip normalisation. The names mirror the official flags so users can carry settings over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.drive.mix import Split
from core.drive.smooth import Smoothing

REGIONS = ("all", "exp", "pose", "lip", "eyes")
DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")
LIP_NORMALIZE_THRESHOLD = 0.03  # official `lip_normalize_threshold`: lips closed before animating only above it
# What a frame of absolute (non-relative) motion copies from the driving expression, per the official code:
# whole keypoints, and single coordinates of a few others (keypoint, axes).
ABSOLUTE_EXP_KEYPOINTS = (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
ABSOLUTE_EXP_COORDS = ((3, (1,)), (4, (1,)), (5, (2,)), (8, (2,)), (9, (1, 2)))


class DriveConfigError(ValueError):
    """An unknown animation region or driving option."""


@dataclass(frozen=True)
class DriveConfig:
    relative_motion: bool = True  # official flag_relative_motion: motion relative to the first driving frame
    region: str = "all"  # official animation_region: all | exp | pose | lip | eyes
    driving_option: str = "expression-friendly"  # scale the motion by the face-size ratio of portrait and driver
    multiplier: float = 1.0  # official driving_multiplier: how far the keypoints move from the portrait's
    stitching: bool = True  # official flag_stitching
    eye_retargeting: bool = False  # official flag_eye_retargeting: eye openness from the driver's landmarks
    lip_retargeting: bool = False  # official flag_lip_retargeting: lip openness from the driver's landmarks
    normalize_lip: bool = False  # official flag_normalize_lip: close the portrait's lips before animating

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise DriveConfigError(f"unknown animation region {self.region!r}: use one of {', '.join(REGIONS)}")
        if self.driving_option not in DRIVING_OPTIONS:
            raise DriveConfigError(f"unknown driving option {self.driving_option!r}: use one of "
                                   f"{', '.join(DRIVING_OPTIONS)}")

    @property
    def drives_pose(self) -> bool:
        return self.region in ("all", "pose")

    @property
    def retargeting(self) -> bool:
        return self.eye_retargeting or self.lip_retargeting


@dataclass(frozen=True)
class LiveDriveOptions:
    """Live face driving beyond LivePortrait's options: which parts the face drives (the rest follow the speech),
    and the smoothing of a webcam's jitter (None: off)."""

    split: Split = field(default_factory=Split)
    smoothing: Smoothing | None = field(default_factory=Smoothing)
