"""Numerical parity with the official LivePortrait code, on the parity kit's stand-in checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.liveportrait import (
    KeypointInfo,
    headpose_bins_to_degrees,
    load_liveportrait,
    retarget_eye,
    retarget_lip,
    rotation_matrix,
    stitch,
    transform_keypoints,
)
from tests.conftest import PARITY_KIT
from tests.helpers import assert_close

MOTION_KEYS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


def t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def test_kit_fingerprints_match_local_torch(parity_kit):
    """If this fails, the local PyTorch draws other random numbers and every parity test below fails for it."""
    manifest = parity_kit.load_manifest()
    expected = json.loads((PARITY_KIT / "fingerprints.json").read_text())
    for module in manifest:
        got = parity_kit.fingerprint(parity_kit.build_checkpoint(manifest, module))
        assert got == expected[module], f"{module}: local torch generates different stand-in weights"


@pytest.fixture(scope="module")
def models(liveportrait_root):
    torch.set_num_threads(2)
    return load_liveportrait(liveportrait_root)


def test_appearance_feature_extractor(models, parity_vectors):
    with torch.no_grad():
        out = models.appearance_feature_extractor(t(parity_vectors["appearance_feature_extractor/in/x"]))
    assert_close(out, parity_vectors["appearance_feature_extractor/out/feature_3d"], "feature_3d")


def test_motion_extractor(models, parity_vectors):
    with torch.no_grad():
        out = models.motion_extractor(t(parity_vectors["motion_extractor/in/x"]))
    for key in MOTION_KEYS:
        assert_close(out[key], parity_vectors[f"motion_extractor/out/{key}"], f"motion_extractor/{key}")


@pytest.mark.slow
def test_warping_module(models, parity_vectors):
    v = parity_vectors
    with torch.no_grad():
        out = models.warping_module(
            t(v["warping_module/in/feature_3d"]),
            kp_driving=t(v["warping_module/in/kp_driving"]),
            kp_source=t(v["warping_module/in/kp_source"]),
        )
    for key in ("out", "occlusion_map", "deformation"):
        assert_close(out[key], v[f"warping_module/out/{key}"], f"warping_module/{key}")


@pytest.mark.slow
def test_spade_generator(models, parity_vectors):
    with torch.no_grad():
        out = models.spade_generator(t(parity_vectors["spade_generator/in/feature"]))
    assert_close(out, parity_vectors["spade_generator/out/out"], "spade_generator/out")


@pytest.mark.parametrize("name", ["stitching", "lip", "eye"])
def test_stitching_retargeting_mlps(models, parity_vectors, name):
    with torch.no_grad():
        out = getattr(models, name)(t(parity_vectors[f"stitching_retargeting_module/in/{name}"]))
    assert_close(out, parity_vectors[f"stitching_retargeting_module/out/{name}"], name)


def test_keypoint_math(models, parity_vectors):
    v = parity_vectors
    motion = {k: t(v[f"motion_extractor/out/{k}"]) for k in MOTION_KEYS}
    info = KeypointInfo.from_motion(motion)
    for name in ("pitch", "yaw", "roll"):
        deg = headpose_bins_to_degrees(motion[name])[:, None]  # the wrapper's (B, 1)
        assert_close(deg, v[f"keypoint_math/out/{name}_deg"], f"{name}_deg", max_abs=1e-3, rel_l2=None)
    assert_close(info.rot, v["keypoint_math/out/rot"], "rot")
    assert_close(info.kp, v["keypoint_math/out/kp"], "kp")
    assert_close(info.exp, v["keypoint_math/out/exp"], "exp")
    assert_close(info.transformed(), v["keypoint_math/out/x_s"], "x_s")
    x_s, x_d = t(v["keypoint_math/out/x_s"]), t(v["keypoint_math/in/x_d"])
    with torch.no_grad():
        assert_close(stitch(models.stitching, x_s, x_d), v["keypoint_math/out/x_d_stitched"], "x_d_stitched")
        lip = retarget_lip(models.lip, x_s, t(v["keypoint_math/in/lip_ratio"]))
        eye = retarget_eye(models.eye, x_s, t(v["keypoint_math/in/eye_ratio"]))
    assert_close(lip, v["keypoint_math/out/lip_delta"], "lip_delta")
    assert_close(eye, v["keypoint_math/out/eye_delta"], "eye_delta")


def test_keypoint_math_large_angles(models, parity_vectors):
    """The synthetic batch has angles up to 55 degrees: rotation-order and transpose slips show up here."""
    v = parity_vectors
    g = "keypoint_math_synth"
    degs = [headpose_bins_to_degrees(t(v[f"{g}/in/{n}"])) for n in ("pitch", "yaw", "roll")]
    for name, deg in zip(("pitch", "yaw", "roll"), degs):
        assert_close(deg, v[f"{g}/out/{name}_deg"], f"synth {name}_deg", max_abs=1e-3, rel_l2=None)
    rot = rotation_matrix(*degs)
    assert_close(rot, v[f"{g}/out/rot"], "synth rot")
    x_s = transform_keypoints(t(v[f"{g}/in/kp"]), rot, t(v[f"{g}/in/exp"]), t(v[f"{g}/in/scale"]), t(v[f"{g}/in/t"]))
    assert_close(x_s, v[f"{g}/out/x_s"], "synth x_s")
    with torch.no_grad():
        stitched = stitch(models.stitching, t(v[f"{g}/out/x_s"]), t(v[f"{g}/in/x_d"]))
    assert_close(stitched, v[f"{g}/out/x_d_stitched"], "synth x_d_stitched")


@pytest.mark.slow
def test_chain_from_image_only(models, parity_vectors):
    """Our own outputs feed each next stage: catches glue mistakes (argument order, reshapes)."""
    v = parity_vectors
    x = t(v["appearance_feature_extractor/in/x"])
    with torch.no_grad():
        f_s = models.appearance_feature_extractor(x)
        x_s = KeypointInfo.from_motion(models.motion_extractor(x)).transformed()
        x_d = x_s + (t(v["keypoint_math/in/x_d"]) - t(v["keypoint_math/out/x_s"]))
        warped = models.warping_module(f_s, x_d, x_s)
        image = models.spade_generator(warped["out"])
    assert_close(x_s, v["keypoint_math/out/x_s"], "chain x_s")
    assert_close(warped["out"], v["warping_module/out/out"], "chain warp out")
    assert_close(warped["deformation"], v["warping_module/out/deformation"], "chain deformation")
    assert_close(image, v["spade_generator/out/out"], "chain image")
