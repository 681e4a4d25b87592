"""Face detection and cropping on a real photograph, and the errors users see for bad images."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from core.face import CROP_SIZE, FaceCropper, ImageLoadError, NoFaceError, load_image, paste_back, psnr


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper()


def _save(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_astronaut_face_found(cropper, astronaut):
    face = cropper.crop(astronaut, "astronaut")
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # The astronaut's face: eyes near y~115, mouth near y~160, nose near x~225 in the 512x512 image.
    assert 195 < cx < 255 and 95 < cy < 150, face.box
    assert 70 < x1 - x0 < 160
    assert face.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and face.crop.dtype == np.uint8
    assert face.n_faces == 1


def test_paste_back_reproduces_the_portrait(cropper, astronaut):
    face = cropper.crop(astronaut, "astronaut")
    big = cv2.resize(face.crop, (512, 512), interpolation=cv2.INTER_CUBIC)  # like the generator's 512 output
    mask = np.ones((512, 512), np.float32)
    out = paste_back(astronaut, big, face.matrix, mask)
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert psnr(out[y0:y1, x0:x1], astronaut[y0:y1, x0:x1]) > 30


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
