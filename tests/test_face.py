"""Face detection and cropping on a real photograph, and the errors users see for bad images."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from core.face import (
    CROP_SIZE,
    FaceChoiceError,
    FaceCropper,
    ImageLoadError,
    NoFaceError,
    apply_orientation,
    load_image,
    paste_back,
    psnr,
)


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper()


def _save(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_astronaut_face_found(cropper, astronaut):
    face = cropper.crop(astronaut, "astronaut")
    x0, y0, x1, y1 = face.box
    # Checked by eye on the 512x512 photo: skin from x~183 to ~265, brows y~92, chin y~165, nose (222, 128).
    assert 183 < (x0 + x1) / 2 < 265 and 92 < (y0 + y1) / 2 < 165, face.box
    assert x0 < 200 and x1 > 250 and y0 < 110 and y1 > 145, face.box
    assert 70 < x1 - x0 < 160
    assert face.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and face.crop.dtype == np.uint8
    assert face.n_faces == 1


def test_crop_follows_liveportraits_framing(cropper, astronaut):
    """LivePortrait's rule (scale 2.3, vy -0.125) puts the face centre at (0.5, 0.625) of the crop and makes the
    face about 1/2.3 of its width."""
    face = cropper.crop(astronaut, "astronaut")
    nose = face.matrix @ np.array([222.0, 128.0, 1.0])
    assert np.allclose(nose / CROP_SIZE, [0.5, 0.625], atol=0.06), nose
    face_width = 265 - 183
    assert 0.35 < face_width * face.matrix[0, 0] / CROP_SIZE < 0.52


def test_paste_back_reproduces_the_portrait(cropper, astronaut):
    face = cropper.crop(astronaut, "astronaut")
    big = cv2.resize(face.crop, (512, 512), interpolation=cv2.INTER_CUBIC)  # like the generator's 512 output
    mask = np.ones((512, 512), np.float32)
    out = paste_back(astronaut, big, face.matrix, mask)
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert psnr(out[y0:y1, x0:x1], astronaut[y0:y1, x0:x1]) > 35  # ~39 dB: only resampling loss


def test_no_face_is_a_clear_error(cropper, tmp_path):
    yy, xx = np.mgrid[0:400, 0:600]
    gradient = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    path = _save(tmp_path / "wall.png", gradient)
    with pytest.raises(NoFaceError, match=r"No face found in .*wall\.png.*frontal photo"):
        cropper.crop(load_image(path), str(path))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ImageLoadError, match=r"not found: .*nope\.png"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage" * 50)
    with pytest.raises(ImageLoadError, match=r"Cannot read .*bad\.jpg"):
        load_image(bad)


def test_formats_and_alpha(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(tmp_path / "a.webp"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert np.array_equal(load_image(tmp_path / "a.png"), astronaut)
    assert np.abs(load_image(tmp_path / "a.webp").astype(int) - astronaut).mean() < 1


def test_huge_image_is_detected_at_full_resolution(cropper, astronaut):
    huge = cv2.resize(astronaut, (4096, 4096), interpolation=cv2.INTER_CUBIC)
    small, big = cropper.crop(astronaut), cropper.crop(huge, "huge")
    assert np.allclose(np.array(big.box) / 8, small.box, atol=8)
    assert np.abs(big.crop.astype(int) - small.crop).mean() < 12


def test_two_faces_use_the_largest(cropper, astronaut, caplog):
    canvas = np.full((512, 1024, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    small = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    canvas[100:400, 650:950] = small
    with caplog.at_level(logging.WARNING):
        face = cropper.crop(canvas, "pair")
    assert face.n_faces >= 2 and "largest" in caplog.text
    assert face.box[0] < 512  # the full-size face on the left


def test_several_faces_are_numbered_largest_first_and_any_can_be_chosen(cropper, astronaut):
    canvas = np.full((512, 1024, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[100:400, 650:950] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    first = cropper.crop(canvas, "pair", face=0)
    second = cropper.crop(canvas, "pair", face=1)
    assert first.n_faces == second.n_faces == len(first.boxes) >= 2
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in first.boxes]
    assert areas == sorted(areas, reverse=True)
    assert first.index == 0 and first.box[0] < 512 and second.index == 1 and second.box[0] > 600
    assert not np.array_equal(first.crop, second.crop)
    with pytest.raises(FaceChoiceError, match=r"pair has \d face\(s\); face 9 does not exist.*largest first"):
        cropper.crop(canvas, "pair", face=8)


def _png_with_orientation(path, rgb, orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    from PIL import Image, ImageOps

    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = _png_with_orientation(tmp_path / "o.png", rgb, orientation)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(load_image(path), expected)
    assert apply_orientation(rgb, 1) is not None and load_image(path).flags["C_CONTIGUOUS"]


def test_phone_photo_with_exif_rotation_finds_the_face(cropper, astronaut, tmp_path):
    """A phone stores the sensor's pixels on their side (orientation 6: show turned 90 degrees clockwise)."""
    from PIL import Image

    stored = np.ascontiguousarray(np.rot90(astronaut[:, :400]))  # upright = stored turned 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "IMG_0001.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    image = load_image(path)
    assert image.shape == (512, 400, 3)  # upright: as tall as the original
    face = cropper.crop(image, path.name)
    assert face.n_faces == 1 and 183 < (face.box[0] + face.box[2]) / 2 < 265


# ---- LivePortrait's ONNX crop models: pre/post-processing checked with stand-in sessions ----------------------
class _Input:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


class FakeSession:
    """Duck-types the bits of onnxruntime.InferenceSession the detectors use; records what it was fed."""

    def __init__(self, name, shape, outputs):
        self._inputs = [_Input(name, shape)]
        self._outputs = outputs
        self.fed = None

    def get_inputs(self):
        return self._inputs

    def run(self, names, feed):
        self.fed = feed
        return self._outputs(feed) if callable(self._outputs) else self._outputs


def _scrfd_outputs(faces):
    """faces: [(stride, row, col, anchor, score, (l, t, r, b) in stride units)] -> the 9 SCRFD output arrays."""
    scores, boxes, points = [], [], []
    for stride in (8, 16, 32):
        n = (512 // stride) ** 2 * 2
        sc, bx, kp = np.zeros((n, 1), np.float32), np.ones((n, 4), np.float32), np.zeros((n, 10), np.float32)
        for s, row, col, anchor, score, dist in faces:
            if s == stride:
                i = (row * (512 // stride) + col) * 2 + anchor
                sc[i], bx[i] = score, dist
                kp[i] = np.tile([1.0, -1.0], 5)
        scores.append(sc)
        boxes.append(bx)
        points.append(kp)
    return scores + boxes + points


def test_scrfd_decoding_letterbox_and_nms():
    from core.face import ScrfdDetector

    faces = [(16, 10, 12, 1, 0.9, (3, 4, 5, 6)),  # centre (192, 160) in the 512 letterbox
             (16, 10, 13, 0, 0.6, (4, 4, 4, 6)),  # overlaps the first: suppressed
             (32, 2, 3, 0, 0.05, (1, 1, 1, 1))]  # below LivePortrait's 0.1 threshold
    session = FakeSession("input.1", [1, 3, "?", "?"], _scrfd_outputs(faces))
    image = np.zeros((768, 1024, 3), np.uint8)
    image[:4, :4] = (255, 0, 0)
    boxes, scores, points = ScrfdDetector(session)(image)
    # letterbox: 1024x768 -> 512x384, so image coords = 2x detector coords
    assert np.allclose(boxes, [[2 * (192 - 48), 2 * (160 - 64), 2 * (192 + 80), 2 * (160 + 96)]])
    assert np.allclose(scores, [0.9]) and np.allclose(points[0], [[2 * (192 + 16), 2 * (160 - 16)]] * 5)
    blob = session.fed["input.1"]
    assert blob.shape == (1, 3, 512, 512)
    assert np.isclose(blob[0, 0, 0, 0], 127.5 / 128) and np.isclose(blob[0, 2, 0, 0], -127.5 / 128)  # RGB order
    assert np.allclose(blob[0, :, 400:, :], -127.5 / 128)  # zero padding below the letterboxed image


def test_landmark_106_maps_back_to_the_image():
    from core.face import Landmark106

    pred = np.zeros((1, 212), np.float32)
    pred[0, :2] = (-1, -1)  # top-left corner of the model's 192 input
    session = FakeSession("data", [1, 3, 192, 192], [pred])
    box = np.array([100.0, 50.0, 180.0, 150.0])  # centre (140, 100), side 100 -> the input spans 150 px
    pts = Landmark106(session)(np.zeros((300, 300, 3), np.uint8), box)
    assert pts.shape == (106, 2)
    assert np.allclose(pts[0], [140 - 75, 100 - 75]) and np.allclose(pts[1:], [140, 100])
    assert session.fed["data"].shape == (1, 3, 192, 192)


def _face_points(center, side, angle_deg, n=106):
    """A landmark set whose eyes sit above the lips, rotated by angle_deg (the face's roll)."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (n, 2)) * side
    pts[[0, 1]] = (-0.5 * side, -0.5 * side), (0.5 * side, 0.5 * side)  # the extent: exactly `side`
    eye_idx, lip_idx = ([33, 35, 40, 39, 87, 89, 94, 93], [52, 61]) if n == 106 else \
        ([0, 6, 12, 18, 24, 30, 36, 42], [48, 66])
    pts[eye_idx] = (0.0, -0.2 * side)
    pts[lip_idx] = (0.0, 0.25 * side)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T + center


def test_rect_from_landmarks_cancels_roll():
    from core.face import rect_from_landmarks

    pts = _face_points(np.array([300.0, 200.0]), 80.0, 12.0)
    center, size, angle = rect_from_landmarks(pts)
    assert np.isclose(np.rad2deg(angle), 12.0) and np.isclose(size, 80.0)
    assert np.allclose(center, [300, 200], atol=1e-6)


def test_onnx_crop_models_are_used_when_present(tmp_path, monkeypatch, astronaut, caplog):
    import core.face as face_mod

    for rel in face_mod.FACE_MODEL_FILES.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"stand-in")
    target = _face_points(np.array([222.0, 128.0]), 80.0, 10.0)
    box = np.array([182.0, 80.0, 267.0, 170.0])  # what the stand-in detector output below decodes to

    def landmarks_106(feed):  # answer with `target`, expressed in the model's (-1, 1) input coordinates
        c, k = (box[:2] + box[2:]) / 2, 192 / (90 * 1.5)
        return [((target - c) * k / 96)[None].reshape(1, -1).astype(np.float32)]

    def landmarks_203(feed):
        return [None, None, np.full((1, 406), 0.5, np.float32)]  # every point at the 224 crop's centre

    # a strong face at cell (8, 14) of stride 16 (centre 224, 128; a 512 image letterboxes 1:1) and a weak one
    det = _scrfd_outputs([(16, 8, 14, 0, 0.9, (42 / 16, 48 / 16, 43 / 16, 42 / 16)),
                          (8, 50, 50, 0, 0.3, (1, 1, 1, 1))])
    sessions = {"det_10g.onnx": FakeSession("input.1", [1, 3, "?", "?"], det),
                "2d106det.onnx": FakeSession("data", [1, 3, 192, 192], landmarks_106),
                "landmark.onnx": FakeSession("input", [1, 3, 224, 224], landmarks_203)}
    monkeypatch.setattr(face_mod, "_onnx_session", lambda path: sessions[path.name])
    cropper = FaceCropper(tmp_path)
    assert cropper.detector.name == "insightface-scrfd"
    face = cropper.crop(astronaut, "astronaut")
    assert face.n_faces == 1  # the 0.3 detection only counts when nothing confident is found
    assert np.allclose(face.box, box, atol=1e-3)
    # the crop is rotated by the landmarks' roll and sized by LivePortrait's rule
    angle = np.rad2deg(np.arctan2(face.matrix[0, 1], face.matrix[0, 0]))
    assert np.isclose(angle, 10.0, atol=1e-3)
    assert np.isclose(np.hypot(*face.matrix[0, :2]), CROP_SIZE / (80 * 2.3), rtol=1e-6)
    assert face.landmarks.shape == (203, 2)
    assert np.allclose(face.landmarks, face.landmarks[0])  # all at one point: the 224 crop's centre, mapped


def test_corrupt_onnx_model_is_a_clear_error(tmp_path):
    from core.face import FACE_MODEL_FILES, FaceModelError

    root = tmp_path / "pretrained_weights"  # LivePortrait's own folder name is accepted too
    for rel in FACE_MODEL_FILES.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not an onnx file")
    with pytest.raises(FaceModelError, match=r"det_10g\.onnx.*weights download face"):
        FaceCropper(tmp_path)


def test_fallback_cancels_head_roll(cropper, astronaut):
    """The eye cascade estimates roll, so a tilted head is cropped upright (as LivePortrait's landmarks do)."""

    def roll(face):
        return np.rad2deg(np.arctan2(face.matrix[0, 1], face.matrix[0, 0]))

    upright = roll(cropper.crop(astronaut))
    for deg in (-12, 12):
        tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((222, 128), deg, 1.0), (512, 512),
                                borderMode=cv2.BORDER_REFLECT)
        # cv2's positive angle turns the picture counter-clockwise: the eye line's angle drops by `deg`
        assert abs((roll(cropper.crop(tilted)) - upright) + deg) < 4, deg
