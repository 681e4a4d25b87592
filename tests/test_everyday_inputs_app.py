"""The app's portrait library takes every image kind the CLI takes, says what to do with a HEIC photo, and a full
or read-only library folder is one sentence with nothing half-added left behind (offscreen Qt)."""

from __future__ import annotations

import errno

import cv2
import numpy as np
import pytest

from app import library
from app.library import PortraitError, analyse_portrait, collect_image_files
from core.face import FaceCropper
from tests.test_app_window import drop, make_window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    w = make_window(qtbot)
    yield w
    w.close()


def test_bmp_tiff_gif_are_added_and_heic_says_convert(qtbot, window, tmp_path, astronaut):
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    names = ["a.bmp", "b.tif", "c.jfif"]
    for name in names:
        ext = ".jpg" if name.endswith(".jfif") else name[name.rindex("."):]
        (tmp_path / name).write_bytes(cv2.imencode(ext, bgr)[1].tobytes())
    from PIL import Image

    Image.fromarray(astronaut).save(tmp_path / "d.gif")
    (tmp_path / "IMG_1.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    drop(window.portrait_list, [tmp_path / n for n in (*names, "d.gif", "IMG_1.HEIC")])
    qtbot.waitUntil(lambda: window.portraits.adding == 0 and len(window.library) == 4, timeout=60000)
    assert sorted(p.name for p in window.library.portraits) == ["a.bmp", "b.tif", "c.jfif", "d.gif"]
    text = "\n".join(window.messages)
    assert "IMG_1.HEIC is a HEIC/HEIF photo" in text and "Convert it to JPEG" in text, text


def test_folder_drop_takes_every_image_kind(tmp_path):
    for name in ("x.png", "y.TIFF", "z.bmp", "w.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found, skipped = collect_image_files([tmp_path])
    assert sorted(p.name for p in found) == ["w.webp", "x.png", "y.TIFF", "z.bmp"]
    _, skipped = collect_image_files([tmp_path / "notes.txt"])
    assert skipped == ["notes.txt: not a PNG, JPEG, WebP, BMP, TIFF, GIF or AVIF image"]


def test_full_library_folder_is_one_sentence_and_leaves_nothing(tmp_path, astronaut, monkeypatch):
    photo = tmp_path / "me.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    folder = tmp_path / "lib"
    real = library._write_png_atomic
    calls = []

    def crop_fits_thumb_does_not(path, rgb):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, rgb)

    monkeypatch.setattr(library, "_write_png_atomic", crop_fits_thumb_does_not)
    with pytest.raises(PortraitError, match=r"me\.png could not be added: the portrait library folder .* is not "
                                            r"writable \(No space left on device\)\. Free some disk space"):
        analyse_portrait(photo, FaceCropper(), folder)
    assert list(folder.iterdir()) == []  # the crop written before the failure is gone
    monkeypatch.setattr(library, "_write_png_atomic", real)
    p = analyse_portrait(photo, FaceCropper(), folder)  # space again: it works
    assert np.asarray(cv2.imread(p.crop)).shape == (256, 256, 3)
