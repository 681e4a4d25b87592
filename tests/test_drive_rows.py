"""Face driving as motion rows: through the real renderer they give the Driver's keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.device import DeviceSpec
from core.drive.config import DriveConfig
from core.drive.motion import extract_motion
from core.drive.render import driver_for
from core.drive.rows import euler_degrees, motion_rows, rows_problem
from core.geometry import rotation_matrix
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import Renderer


@pytest.fixture(scope="module")
def setup(astronaut):
    torch.manual_seed(0)
    spec = DeviceSpec(torch.device("cpu"), torch.float32)
    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), spec)
    portrait = renderer.prepare(astronaut, "astronaut")
    crops = []
    for i in range(8):  # the portrait's own crop, moved and zoomed a little per frame
        m = np.float32([[1 + 0.02 * (i % 3), 0.03 * (i - 4), 4 * np.sin(i)], [-0.03 * (i - 4), 1, 3 * np.cos(i)]])
        crops.append(cv2.warpAffine(portrait.face.crop, m, (256, 256)))
    motion = extract_motion(renderer.models.motion_extractor, np.stack(crops), [None] * 8)
    return renderer, portrait, motion


def test_euler_degrees_inverts_rotation_matrix():
    angles = torch.tensor([[10.0, -35.0, 5.0], [-20.0, 60.0, -40.0], [0.0, 0.0, 0.0], [80.0, 10.0, 170.0]])
    got = euler_degrees(rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))
    torch.testing.assert_close(got, angles, atol=1e-4, rtol=0)


@pytest.mark.parametrize("region", ["all", "exp", "pose", "lip", "eyes"])
def test_rows_through_the_renderer_give_the_drivers_keypoints(setup, region):
    renderer, portrait, motion = setup
    config = DriveConfig(region=region, stitching=renderer.stitching)
    driver = driver_for(renderer, portrait, config)
    expected = driver.keypoints(motion)
    a = portrait.angles
    rows = motion_rows(motion, motion[0], rotation_matrix(a[:, 0], a[:, 1], a[:, 2]), a, config)
    got = renderer.driving_keypoints(portrait, rows, look=False)
    assert float((expected - got).abs().max()) < 1e-4
    assert float((expected[1:] - expected[:1]).abs().max()) > 1e-3  # the driver moves the face


def test_what_rows_cannot_carry_is_named():
    assert rows_problem(DriveConfig()) is None
    assert "absolute" in rows_problem(DriveConfig(relative_motion=False))
    assert "retargeting" in rows_problem(DriveConfig(eye_retargeting=True))
    assert "multiplier" in rows_problem(DriveConfig(multiplier=1.5))
