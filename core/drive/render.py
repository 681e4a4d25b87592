"""A driving take through the renderer: driving keypoints (core/drive/keypoints.py) -> warping -> SPADE ->
paste-back into the portrait, batch by batch, each finished frame handed to `write`.

The renderer's own motion-row path is bypassed: driving gives keypoints directly (as the official pipeline
hands them to `warp_decode`). Frames whose face was missing blend toward the rest pose (the driver's keypoints for
its first frame) by `presence_weights`; frames with the face in view are the driver's keypoints untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.drive.config import DriveConfig
from core.drive.keypoints import DriveMLPs, Driver, DriveSource
from core.drive.take import DrivingTake, presence_weights


def driver_for(renderer, portrait, config: DriveConfig) -> Driver:
    m = renderer.models
    return Driver(DriveSource.of(portrait), DriveMLPs(stitching=m.stitching, eye=m.eye, lip=m.lip), config)


@torch.inference_mode()
def take_keypoints(driver: Driver, take: DrivingTake, device: torch.device | str, batch: int):
    """Yield (start, keypoints (B, 21, 3)) for the whole take, missing faces eased to the rest pose."""
    driver.reset()
    motion = take.motion.to(device)
    rest = driver.keypoints(motion[0])  # the first frame is the reference: the portrait at rest
    weights = torch.from_numpy(presence_weights(take.present)).to(device)
    for a in range(0, len(take), batch):
        x = driver.keypoints(motion[a : a + batch])
        w = weights[a : a + batch].reshape(-1, 1, 1)
        if bool((w < 1).any()):
            x = torch.where(w < 1, torch.lerp(rest.expand_as(x), x, w), x)
        yield a, x


@torch.inference_mode()
def render_take(renderer, portrait, take: DrivingTake, config: DriveConfig,
                write: Callable[[np.ndarray, int], None], batch: int = 8) -> int:
    """Render every frame of `take` for `portrait`; `write(frame (H, W, 3) uint8, index)`. Returns the count."""
    dev, dtype = renderer.spec.device, renderer.spec.storage_dtype
    driver = driver_for(renderer, portrait, config)
    backend = renderer.backend
    n = 0
    for start, x in take_keypoints(driver, take, dev, batch):
        b = x.shape[0]
        warped = backend.warp(portrait.feature_3d.expand(b, -1, -1, -1, -1), x.to(dtype),
                              portrait.x_s.expand(b, -1, -1).to(dtype))["out"]
        frames = renderer.composite(portrait, backend.generate(warped))
        host = frames.cpu().numpy()
        for j in range(b):
            write(host[j], start + j)
        n += b
    return n
