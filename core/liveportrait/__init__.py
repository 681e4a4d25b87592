"""LivePortrait's five networks in our own code; the official checkpoints load into them unchanged."""

from .config import LivePortraitConfig
from .keypoints import (
    KeypointInfo,
    headpose_bins_to_degrees,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
    stitch,
    transform_keypoints,
)
from .loader import (
    CheckpointError,
    LivePortraitModels,
    build_liveportrait,
    load_liveportrait,
    load_retargeting,
    save_liveportrait,
    verify_checkpoint,
)

__all__ = [
    "CheckpointError", "KeypointInfo", "LivePortraitConfig", "LivePortraitModels", "build_liveportrait",
    "headpose_bins_to_degrees", "load_liveportrait", "load_retargeting", "retarget_eye", "retarget_lip",
    "rotation_matrix", "save_liveportrait", "stitch", "transform_keypoints", "verify_checkpoint",
]
