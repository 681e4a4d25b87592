"""Keypoint math: parity with the official wrapper on the kit's vectors, plus convention checks of our own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.liveportrait import (
    KeypointInfo,
    headpose_bins_to_degrees,
    load_retargeting,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
    stitch,
    transform_keypoints,
)
from tests.helpers import assert_close

MOTION_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
DEG = {"max_abs": 1e-3, "rel_l2": None}  # the kit's bound for angles in degrees


def t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


@pytest.fixture(scope="module")
def mlps(liveportrait_root):
    """Only the three MLPs of the kit's retargeting file: the big networks are not needed here."""
    return load_retargeting(liveportrait_root)


# --- parity with the official wrapper (kit vectors) ---------------------------------------------------------


def test_keypoint_math_matches_official(mlps, parity_vectors):
    v = parity_vectors
    motion = {k: t(v[f"motion_extractor/out/{k}"]) for k in MOTION_KEYS}
    info = KeypointInfo.from_motion(motion)
    for name in ("pitch", "yaw", "roll"):
        deg = headpose_bins_to_degrees(motion[name])[:, None]  # the wrapper's get_kp_info returns (B, 1)
        assert_close(deg, v[f"keypoint_math/out/{name}_deg"], f"{name}_deg", **DEG)
        assert_close(getattr(info, name)[:, None], v[f"keypoint_math/out/{name}_deg"], f"info.{name}", **DEG)
    assert_close(info.rot, v["keypoint_math/out/rot"], "rot")
    assert_close(info.kp, v["keypoint_math/out/kp"], "kp")
    assert_close(info.exp, v["keypoint_math/out/exp"], "exp")
    assert_close(info.transformed(), v["keypoint_math/out/x_s"], "x_s")
    x_s, x_d = t(v["keypoint_math/out/x_s"]), t(v["keypoint_math/in/x_d"])
    with torch.no_grad():
        stitched = stitch(mlps["stitching"], x_s, x_d)
        lip = retarget_lip(mlps["lip"], x_s, t(v["keypoint_math/in/lip_ratio"]))
        eye = retarget_eye(mlps["eye"], x_s, t(v["keypoint_math/in/eye_ratio"]))
    assert_close(stitched, v["keypoint_math/out/x_d_stitched"], "x_d_stitched")
    assert_close(lip, v["keypoint_math/out/lip_delta"], "lip_delta")
    assert_close(eye, v["keypoint_math/out/eye_delta"], "eye_delta")


def test_keypoint_math_large_angles_match_official(mlps, parity_vectors):
    """The synthetic batch has angles up to 55 degrees: rotation-order and transpose slips show up here."""
    v, g = parity_vectors, "keypoint_math_synth"
    degs = [headpose_bins_to_degrees(t(v[f"{g}/in/{n}"])) for n in ("pitch", "yaw", "roll")]
    for name, deg in zip(("pitch", "yaw", "roll"), degs):
        assert_close(deg, v[f"{g}/out/{name}_deg"], f"synth {name}_deg", **DEG)  # shape (2,) here
    rot = rotation_matrix(*degs)
    assert_close(rot, v[f"{g}/out/rot"], "synth rot")
    x_s = transform_keypoints(t(v[f"{g}/in/kp"]), rot, t(v[f"{g}/in/exp"]), t(v[f"{g}/in/scale"]), t(v[f"{g}/in/t"]))
    assert_close(x_s, v[f"{g}/out/x_s"], "synth x_s")
    info = KeypointInfo.from_motion({k: t(v[f"{g}/in/{k}"]) for k in MOTION_KEYS})
    assert_close(info.transformed(), v[f"{g}/out/x_s"], "synth KeypointInfo x_s")
    with torch.no_grad():
        stitched = stitch(mlps["stitching"], t(v[f"{g}/out/x_s"]), t(v[f"{g}/in/x_d"]))
    assert_close(stitched, v[f"{g}/out/x_d_stitched"], "synth x_d_stitched")


# --- conventions, independent of the kit ---------------------------------------------------------------------


def test_degrees_pass_through_and_peak():
    already = torch.tensor([[12.5], [-3.0]])
    assert headpose_bins_to_degrees(already) is already
    logits = torch.full((2, 66), -1e4)
    logits[0, 40] = 0.0  # bin 40 -> 3 * 40 - 97.5
    logits[1, 10] = logits[1, 11] = 0.0  # halfway between bins 10 and 11
    assert torch.allclose(headpose_bins_to_degrees(logits), torch.tensor([22.5, -66.0]))


def test_rotation_is_a_proper_rotation_and_right_multiplies_rows():
    gen = torch.Generator().manual_seed(0)
    p, y, r = (torch.rand(5, generator=gen) * 180 - 90 for _ in range(3))
    rot = rotation_matrix(p, y, r)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(5), atol=1e-6)
    assert torch.equal(rotation_matrix(p[:, None], y[:, None], r[:, None]), rot)  # (B, 1) angles accepted
    zero, quarter = torch.zeros(1), torch.full((1,), 90.0)
    x_axis = torch.tensor([[1.0, 0.0, 0.0]])
    # Row vector @ R^T == (R @ column)^T: yaw +90 turns +x to -z, roll +90 turns +x to +y, pitch leaves +x alone.
    assert torch.allclose(x_axis @ rotation_matrix(zero, quarter, zero)[0], torch.tensor([[0.0, 0.0, -1.0]]), atol=1e-6)
    assert torch.allclose(x_axis @ rotation_matrix(zero, zero, quarter)[0], torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(x_axis @ rotation_matrix(quarter, zero, zero)[0], x_axis, atol=1e-6)
    # Order: the matrix applies pitch first, then yaw, then roll (Rz Ry Rx on column vectors).
    rx, ry, rz = (rotation_matrix(*(a if i == j else zero for j, a in enumerate((quarter,) * 3))) for i in range(3))
    assert torch.allclose(rotation_matrix(quarter, quarter, quarter), rx @ ry @ rz, atol=1e-6)


def test_transform_ignores_tz_and_accepts_flat_or_shaped_keypoints():
    gen = torch.Generator().manual_seed(1)
    kp, exp = torch.randn(2, 21, 3, generator=gen), torch.randn(2, 21, 3, generator=gen)
    rot = rotation_matrix(torch.tensor([10.0, -20.0]), torch.tensor([5.0, 30.0]), torch.tensor([0.0, 45.0]))
    scale, tr = torch.tensor([[1.5], [0.5]]), torch.tensor([[0.1, -0.2, 0.0], [0.3, 0.4, 0.0]])
    x = transform_keypoints(kp, rot, exp, scale, tr)
    assert torch.equal(transform_keypoints(kp.flatten(1), rot, exp.flatten(1), scale, tr), x)
    assert torch.equal(transform_keypoints(kp, rot, exp, scale, tr + torch.tensor([0.0, 0.0, 9.0])), x)
    expected = scale[:, :, None] * (torch.einsum("bkj,bji->bki", kp, rot) + exp)
    expected[..., :2] += tr[:, None, :2]
    assert torch.allclose(x, expected, atol=1e-6)


class _Constant(nn.Module):
    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return self.out.expand(x.shape[0], -1)


def test_stitch_adds_keypoint_deltas_then_shifts_x_y():
    x_s, x_d = torch.randn(2, 21, 3), torch.randn(2, 21, 3)
    delta = torch.arange(65, dtype=torch.float32)[None] / 100
    mlp = _Constant(delta)
    out = stitch(mlp, x_s, x_d)
    assert torch.equal(mlp.seen, torch.cat((x_s.flatten(1), x_d.flatten(1)), 1))
    expected = x_d + delta[:, :63].view(1, 21, 3)
    expected[..., 0] += 0.63
    expected[..., 1] += 0.64
    assert torch.allclose(out, expected)
    assert torch.equal(stitch(_Constant(torch.zeros(1, 65)), x_s, x_d), x_d)


def test_retargeting_feeds_source_and_ratios():
    x_s = torch.randn(3, 21, 3)
    lip_mlp, eye_mlp = _Constant(torch.ones(1, 63)), _Constant(torch.ones(1, 63))
    assert retarget_lip(lip_mlp, x_s, torch.rand(3, 2)).shape == (3, 21, 3)
    assert retarget_eye(eye_mlp, x_s, torch.rand(3, 3)).shape == (3, 21, 3)
    assert lip_mlp.seen.shape == (3, 65) and eye_mlp.seen.shape == (3, 66)
    assert torch.equal(lip_mlp.seen[:, :63], x_s.flatten(1))


def test_keypoint_info_from_motion_shapes():
    gen = torch.Generator().manual_seed(2)
    out = {k: torch.randn(4, n, generator=gen) for k, n in
           {"pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63, "scale": 1, "kp": 63}.items()}
    info = KeypointInfo.from_motion(out)
    assert info.pitch.shape == (4,) and info.rot.shape == (4, 3, 3) and info.kp.shape == (4, 21, 3)
    assert torch.equal(info.rot, rotation_matrix(info.pitch, info.yaw, info.roll))
    assert torch.equal(info.transformed(), transform_keypoints(out["kp"], info.rot, out["exp"], out["scale"], out["t"]))
