"""Face driving against LivePortrait's own `LivePortraitPipeline.execute` (image source + driving video), on the
parity kit's stand-in weights.

tests/fixtures/drive_parity.npz (~245 KB) was made outside this repository by running the official pipeline
(KwaiVGI/LivePortrait commit 1986663be3b6902605d32200c01f4bfd36cda83d, module code unmodified) on CPU, fp32,
with the kit's stand-in weights loaded by the official `load_model`:

    git -C <LivePortrait mirror> archive 1986663b src app.py | tar -x -C /work/lp-official
    python /work/drive-fixtures/make.py /work/lp-official tests/fixtures/drive_parity.npz

The harness stubbed only what `execute` cannot or need not do here: tyro's argument config, the InsightFace
cropper (flag_do_crop=False: both sides get the same 256x256 source crop, the kit's image, and the same 203
landmarks, stored as `source_landmarks` / `driving_landmarks`), the video IO (the driving "video" is the 12
integer-only frames `driving_frames` below builds from the kit's image), and `warp_decode`, which recorded the
keypoints `execute` hands to the warping network per frame (`x_d/<setting>`). Settings: every animation region
with stitching on and off, pose-friendly, driving multiplier 1.4, absolute motion, lip normalisation, eye / lip
/ both retargeting. It also stored the motion template `execute` dumped (`template/*`), and, for four driven
frames, the official F, W, G decode (the real `warp_decode` + `parse_output` on the keypoints `execute` produced;
`image/<setting>/<frame>/...`: a 128x128 centre patch and every 8th pixel of the 512x512 face), compared in the
slow test at the end (per network 1e-4 is checked by tests/test_liveportrait_parity.py; paste-back is not in the
official path with flag_do_crop=False).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from core.drive.config import DriveConfig
from core.drive.keypoints import DriveMLPs, Driver, DriveSource
from core.drive.motion import DrivingMotion, extract_motion, ratios_of
from core.liveportrait import KeypointInfo
from core.liveportrait.loader import load_retargeting
from tests.helpers import assert_close

FIXTURE = Path(__file__).parent / "fixtures" / "drive_parity.npz"
KP_TOL = 1e-5
NET_TOL = 1e-4
# (dy, dx, zoom numerator, zoom denominator, brightness, mirror), as in the generator: integer-only frames
FRAME_TABLE = ((0, 0, 1, 1, 0, False), (2, 0, 1, 1, 0, False), (4, -3, 17, 16, 5, False), (-6, 5, 15, 16, -8, False),
               (8, 8, 9, 8, 0, False), (0, -10, 1, 1, 12, False), (-4, 12, 8, 9, -5, False), (3, 3, 1, 1, 0, True),
               (10, -2, 19, 16, 7, False), (-8, -8, 7, 8, 0, False), (5, 0, 5, 4, -10, False), (0, 6, 1, 1, 20, True))
OFFICIAL_FLAGS = {"animation_region": "region", "flag_stitching": "stitching", "driving_option": "driving_option",
                  "driving_multiplier": "multiplier", "flag_relative_motion": "relative_motion",
                  "flag_normalize_lip": "normalize_lip", "flag_eye_retargeting": "eye_retargeting",
                  "flag_lip_retargeting": "lip_retargeting"}


def driving_frames(image: np.ndarray) -> np.ndarray:
    base = np.arange(256) - 128
    out = []
    for dy, dx, num, den, bright, mirror in FRAME_TABLE:
        ys = np.clip(base * den // num + 128 - dy, 0, 255)
        xs = np.clip(base * den // num + 128 - dx, 0, 255)
        f = image[ys][:, xs]
        if mirror:
            f = f[:, ::-1]
        out.append(np.clip(f.astype(np.int16) + bright, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def mlps(parity_kit, tmp_path_factory):
    root = tmp_path_factory.mktemp("drive_weights")
    parity_kit.write_checkpoint(parity_kit.load_manifest(), "stitching_retargeting_module", root)
    m = load_retargeting(root)
    return DriveMLPs(stitching=m["stitching"], eye=m["eye"], lip=m["lip"])


def _source(fx) -> DriveSource:
    out = {k: torch.from_numpy(fx[f"source/{k}"]) for k in ("pitch", "yaw", "roll", "kp", "exp", "t", "scale")}
    info = KeypointInfo.from_motion(out)  # angles already in degrees (B, 1): they pass through
    return DriveSource(kp=info.kp, exp=info.exp, scale=info.scale, t=info.t, rot=info.rot, x_s=info.transformed(),
                       landmarks=fx["source_landmarks"])


def _official_motion(fx) -> DrivingMotion:
    t = {k: torch.from_numpy(fx[f"template/{k}"]) for k in ("scale", "R", "exp", "t", "kp", "x_s")}
    return DrivingMotion(**t, c_eyes=torch.from_numpy(fx["template/c_eyes"]),
                         c_lip=torch.from_numpy(fx["template/c_lip"]))


def _config(fx, name: str) -> DriveConfig:
    official = ast.literal_eval(str(fx[f"settings/{name}"]))
    return DriveConfig(**{OFFICIAL_FLAGS[k]: v for k, v in official.items()})


def _settings(fx) -> list[str]:
    return sorted(k.split("/", 1)[1] for k in fx.files if k.startswith("x_d/"))


def test_fixture_covers_regions_stitching_and_options(fx):
    names = _settings(fx)
    for region in ("all", "exp", "pose", "lip", "eyes"):
        assert f"{region}-stitched" in names and f"{region}-raw" in names
    for extra in ("pose_friendly", "multiplier", "absolute", "normalize_lip", "eye_retarget", "lip_retarget"):
        assert any(n.startswith(extra + "-") for n in names), extra
    assert fx["x_d/all-stitched"].shape == (12, 21, 3)


def test_source_keypoints_match_official(fx):
    assert_close(_source(fx).x_s.numpy(), fx["x_s"], "x_s", max_abs=KP_TOL, rel_l2=None)


def test_landmark_ratios_match_official_template(fx):
    eyes, lips = ratios_of(list(fx["driving_landmarks"]))
    assert_close(eyes, fx["template/c_eyes"], "c_eyes", max_abs=1e-6, rel_l2=None)
    assert_close(lips, fx["template/c_lip"], "c_lip", max_abs=1e-6, rel_l2=None)


@pytest.mark.parametrize("name", [
    "all-stitched", "all-raw", "exp-stitched", "exp-raw", "pose-stitched", "pose-raw", "lip-stitched", "lip-raw",
    "eyes-stitched", "eyes-raw", "pose_friendly-stitched", "multiplier-stitched", "absolute-stitched",
    "absolute-raw", "absolute_exp-raw", "normalize_lip-stitched", "normalize_lip-raw", "eye_retarget-stitched",
    "lip_retarget-raw", "both_retarget-stitched", "absolute_both_retarget-stitched"])
def test_driving_keypoints_match_official_execute(fx, mlps, name):
    """The official template's motion through the Driver, the whole take at once and frame by frame."""
    expected = fx[f"x_d/{name}"]
    motion = _official_motion(fx)
    driver = Driver(_source(fx), mlps, _config(fx, name))
    assert_close(driver.keypoints(motion).numpy(), expected, name, max_abs=KP_TOL, rel_l2=None)
    driver.reset()
    streamed = torch.cat([driver.keypoints(motion[i]) for i in range(len(motion))])
    assert_close(streamed.numpy(), expected, f"{name} streamed", max_abs=KP_TOL, rel_l2=None)


def test_driving_keypoints_move_with_the_driver(fx, mlps):
    """Not a tautology: frames differ from the first, and a wrong reference frame would fail the parity above."""
    motion = _official_motion(fx)
    driver = Driver(_source(fx), mlps, DriveConfig())
    x = driver.keypoints(motion).numpy()
    assert np.abs(x[1:] - x[:1]).max() > 1e-3
    driver.reset()
    driver.keypoints(motion[3])  # a different first frame: a different take
    assert np.abs(driver.keypoints(motion).numpy() - fx["x_d/all-stitched"]).max() > 1e-3


@pytest.mark.slow
def test_motion_extraction_matches_official_template(fx, parity_kit, parity_vectors, tmp_path):
    """The kit's motion extractor on the 12 driving frames -> the template the official `execute` dumped."""
    root = tmp_path / "w"
    parity_kit.write_checkpoint(parity_kit.load_manifest(), "motion_extractor", root)
    from core.liveportrait.config import LivePortraitConfig
    from core.liveportrait.loader import BASE_MODELS, _construct, _load_strict, _read

    with torch.device("meta"):
        models = _construct(LivePortraitConfig.official())
    path = root / BASE_MODELS["motion_extractor"]
    _load_strict(models.motion_extractor, _read(path), path)
    me = models.motion_extractor.eval()
    image = (np.clip(parity_vectors["motion_extractor/in/x"][0].transpose(1, 2, 0), 0, 1) * 255).round()
    frames = driving_frames(image.astype(np.uint8))
    assert [int(f.astype(np.int64).sum()) for f in frames] == list(fx["frames_checksum"])
    torch.set_num_threads(2)
    got = extract_motion(me, frames, list(fx["driving_landmarks"]), batch=4)
    for k in ("scale", "R", "exp", "t", "kp", "x_s"):
        assert_close(getattr(got, k).numpy(), fx[f"template/{k}"], f"template/{k}", max_abs=NET_TOL, rel_l2=None)
    assert_close(got.c_eyes.numpy(), fx["template/c_eyes"], "c_eyes", max_abs=1e-6, rel_l2=None)


@pytest.fixture(scope="module")
def full_models(liveportrait_root):
    from core.liveportrait import load_liveportrait

    torch.set_num_threads(2)
    return load_liveportrait(liveportrait_root)


@pytest.mark.slow
def test_decoded_faces_match_official_execute(fx, full_models, parity_vectors):
    """The official picture for a few driven frames, chained through Headcast alone from the same 256x256 source
    and driving crops: motion extractor (source and driver) -> Driver -> warping -> SPADE -> uint8 as the official
    parse_output. Every stored pixel (a 128x128 centre patch and every 8th pixel of the 512x512 face) within 1
    level."""
    m = full_models
    image = (np.clip(parity_vectors["motion_extractor/in/x"][0].transpose(1, 2, 0), 0, 1) * 255).round()
    image = image.astype(np.uint8)
    frames = driving_frames(image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        f_s = m.appearance_feature_extractor(x)
        info = KeypointInfo.from_motion(m.motion_extractor(x))
    source = DriveSource(kp=info.kp, exp=info.exp, scale=info.scale, t=info.t, rot=info.rot, x_s=info.transformed(),
                         landmarks=fx["source_landmarks"])
    motion = extract_motion(m.motion_extractor, frames, list(fx["driving_landmarks"]), batch=4)
    mlps_ = DriveMLPs(stitching=m.stitching, eye=m.eye, lip=m.lip)
    cases = sorted({tuple(k.split("/")[1:3]) for k in fx.files if k.startswith("image/")})
    assert len(cases) >= 4
    for name, i in cases:
        x_d = Driver(source, mlps_, _config(fx, name)).keypoints(motion)[int(i) : int(i) + 1]
        with torch.no_grad():
            out = m.spade_generator(m.warping_module(f_s, kp_driving=x_d, kp_source=source.x_s)["out"])
        face = (np.clip(out[0].permute(1, 2, 0).numpy(), 0, 1) * 255).astype(np.uint8).astype(np.int16)
        for part, got in (("centre", face[192:320, 192:320]), ("every8", face[::8, ::8])):
            diff = np.abs(got - fx[f"image/{name}/{i}/{part}"].astype(np.int16))
            assert diff.max() <= 1, f"{name} frame {i} {part}: {int(diff.max())} levels, {(diff > 1).sum()} pixels"
