"""The look's edits against LivePortrait's own editor, on the parity kit's stand-in retargeting weights.

tests/fixtures/look_parity.npz (61 KB) was made outside this repository by running the official
`GradioPipeline.execute_image_retargeting` (KwaiVGI/LivePortrait commit 1986663be3b6902605d32200c01f4bfd36cda83d,
module code unmodified) on CPU, fp32, with the kit's stand-in weights loaded by the official `load_model`:

    git -C <LivePortrait mirror> archive 1986663b src app.py | tar -x -C /work/lp-official
    python /work/look-fixtures/make.py /work/lp-official tests/fixtures/look_parity.npz

The harness stubbed what the editor's path does not compute with (gradio, tyro's argument config, the Kalman
filter and video helpers, the InsightFace cropper: both sides get the same 256x256 image and the same 203
landmarks, stored as `landmarks`) and captured the keypoints the editor hands to `warp_decode` instead of
decoding. Three sources: the motion extractor's output for the kit's image (`real`) and the kit's two synthetic
keypoint sets (large angles, scale 1.6 / 2.1). Per source: 23 single-control cases (both signs where the editor
branches on the sign) and three combinations, with stitching, plus a few without (`raw`). For two cases it also
stored the editor's decoded 512x512 face (official F, W, G on the kit's weights; `real/image/...`: a 128x128 centre
patch and every 8th pixel), compared in the slow test below.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.liveportrait.loader import load_retargeting
from core.look import ALIASES, CONTROLS, Look, SourceRatios, edit_keypoints
from tests.helpers import assert_close

FIXTURE = Path(__file__).parent / "fixtures" / "look_parity.npz"
SOURCES = ("real", "synth0", "synth1")
KP_TOL = 1e-6


@pytest.fixture(scope="module")
def fixture():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def mlps(parity_kit, tmp_path_factory):
    """Only the retargeting file of the kit (the editor's keypoints need no other network)."""
    root = tmp_path_factory.mktemp("look_weights")
    parity_kit.write_checkpoint(parity_kit.load_manifest(), "stitching_retargeting_module", root)
    return load_retargeting(root)


@pytest.fixture(scope="module")
def full_models(liveportrait_root):
    from core.liveportrait import load_liveportrait

    torch.set_num_threads(2)
    return load_liveportrait(liveportrait_root)


def _source(fx, name: str):
    info = {k: torch.from_numpy(fx[f"{name}/info/{k}"]) for k in ("pitch", "yaw", "roll", "kp", "exp", "t", "scale")}
    angles = torch.cat((info["pitch"], info["yaw"], info["roll"]), dim=1)
    return SimpleNamespace(kp=info["kp"], exp=info["exp"], scale=info["scale"], t=info["t"], angles=angles,
                           x_s=torch.from_numpy(fx[f"{name}/x_s"]))


def _ratios(fx) -> SourceRatios:
    """The portrait's own ratios through Headcast's landmark code (a crop carrying the stored 203 landmarks)."""
    return SourceRatios.of(SimpleNamespace(face=SimpleNamespace(landmarks=fx["landmarks"])))


def _look(fx, case: str) -> Look:
    values = ast.literal_eval(str(fx[f"controls/{case}"]))
    return Look.from_dict(values)  # official names, translated through ALIASES


def _cases(fx, kind: str) -> list[str]:
    return sorted({k.split("/")[2] for k in fx.files if k.startswith(f"real/{kind}/")})


def test_fixture_covers_every_control_and_three_combinations(fixture):
    singles = [_look(fixture, c) for c in _cases(fixture, "stitched") if c.startswith("single")]
    covered = {name for look in singles for name in look.changed()}
    assert covered == {c.name for c in CONTROLS}
    assert len([c for c in _cases(fixture, "stitched") if c.startswith("combo")]) == 3
    assert set(ALIASES) <= {c.official for c in CONTROLS}


@pytest.mark.parametrize("kind", ["stitched", "raw"])
@pytest.mark.parametrize("source", SOURCES)
def test_edit_matches_official_editor(fixture, mlps, source, kind):
    src, ratios = _source(fixture, source), _ratios(fixture)
    stitching = mlps["stitching"] if kind == "stitched" else None
    cases = _cases(fixture, kind)
    assert cases
    for case in cases:
        look = _look(fixture, case)
        got = edit_keypoints(src, look, stitching, mlps["eye"], mlps["lip"], ratios)
        assert_close(got, fixture[f"{source}/{kind}/{case}"], f"{source}/{kind}/{case} {look.describe()}",
                     max_abs=KP_TOL, rel_l2=None)


def test_edits_are_not_trivially_equal(fixture, mlps):
    """Guard against a fixture that cannot fail: every single-control case moves the keypoints."""
    neutral = edit_keypoints(_source(fixture, "synth0"), Look(), mlps["stitching"], mlps["eye"], mlps["lip"],
                             _ratios(fixture))
    for case in _cases(fixture, "stitched"):
        moved = np.abs(fixture[f"synth0/stitched/{case}"] - neutral.numpy()).max()
        assert moved > 1e-4, case


def test_ratio_equal_to_the_shown_one_is_no_edit(fixture, mlps):
    """The editor skips the MLP when the slider shows the portrait's own (rounded) ratio; so does the look."""
    src, ratios = _source(fixture, "real"), _ratios(fixture)
    plain = edit_keypoints(src, Look(), mlps["stitching"], mlps["eye"], mlps["lip"], ratios)
    same = edit_keypoints(src, Look(eye_ratio=ratios.shown_eye, lip_ratio=ratios.shown_lip), mlps["stitching"],
                          mlps["eye"], mlps["lip"], ratios)
    assert torch.equal(plain, same)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["single14", "combo0"])
def test_decoded_face_matches_official_editor(full_models, fixture, parity_vectors, case):
    """The editor's picture, chained through Headcast's own networks from the same 256x256 image (motion
    extractor -> look -> stitching -> warping -> SPADE -> uint8 as the official parse_output): every stored
    pixel (a 128x128 centre patch and every 8th pixel of the 512x512 face) within 1 level."""
    from core.liveportrait import KeypointInfo

    models = full_models
    x = parity_vectors["motion_extractor/in/x"]
    image = torch.from_numpy((np.clip(x, 0, 1) * 255).round().astype(np.uint8)).float() / 255
    with torch.no_grad():
        f_s = models.appearance_feature_extractor(image)
        info = KeypointInfo.from_motion(models.motion_extractor(image))
        src = SimpleNamespace(kp=info.kp, exp=info.exp, scale=info.scale, t=info.t, x_s=info.transformed(),
                              angles=torch.stack((info.pitch, info.yaw, info.roll), dim=1))
        look = _look(fixture, case)
        x_d = edit_keypoints(src, look, models.stitching, models.eye, models.lip, _ratios(fixture))
        out = models.spade_generator(models.warping_module(f_s, kp_driving=x_d, kp_source=src.x_s)["out"])
    face = (np.clip(out[0].permute(1, 2, 0).numpy(), 0, 1) * 255).astype(np.uint8).astype(np.int16)
    for part, got in (("centre", face[192:320, 192:320]), ("every8", face[::8, ::8])):
        diff = np.abs(got - fixture[f"real/image/{case}/{part}"])
        where = np.unravel_index(diff.argmax(), diff.shape)
        assert diff.max() <= 1, f"{case}/{part}: {int(diff.max())} levels at {where}"
    neutral = edit_keypoints(src, Look(), models.stitching, models.eye, models.lip, _ratios(fixture))
    assert (x_d - neutral).abs().max() > 1e-3  # the look moved the keypoints the picture was made from
