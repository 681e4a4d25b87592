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
branches on the sign) and three combinations, with stitching, plus a few without (`raw`).
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
