"""Everyday inputs through the real loaders and the render CLI: unusual-but-valid files work and give the right
pixels/samples; bad ones give one sentence naming the file and the fix (exit 2), never a traceback."""

from __future__ import annotations

import errno
import re
import struct

import cv2
import numpy as np
import pytest

from core.__main__ import main as core_main
from core.audio.io import decode_audio
from core.face import FaceCropper, ImageLoadError, load_image


# ------------------------------------------------------------------------------------------------ portraits
def _rgba16_png(path, rgb):
    """16-bit RGBA PNG, top 40 rows fully transparent."""
    a = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)]).astype(np.uint16) * 257
    a[:40, :, 3] = 0
    cv2.imwrite(str(path), a)
    expected = rgb.copy()
    expected[:40] = 255  # composited on white
    return expected


def _gray_alpha16_png(path, rgb):
    """8-bit gray + alpha PNG (Pillow mode LA)."""
    gray = rgb[..., 1]
    from PIL import Image

    Image.fromarray(gray).convert("LA").save(path)
    return np.repeat(gray[..., None], 3, axis=2)


def _float_tiff(path, rgb):
    cv2.imwrite(str(path), (rgb[..., ::-1] / 255.0).astype(np.float32))
    return rgb


def _gray16_png(path, rgb):
    cv2.imwrite(str(path), rgb[..., 0].astype(np.uint16) * 257)
    return np.repeat(rgb[..., :1], 3, axis=2)


@pytest.mark.parametrize("make", [_rgba16_png, _gray_alpha16_png, _float_tiff, _gray16_png],
                         ids=["rgba16.png", "la.png", "float32.tiff", "gray16.png"])
def test_unusual_image_formats_load_with_the_right_pixels(tmp_path, astronaut, make):
    path = tmp_path / make.__name__.lstrip("_").replace("_", ".", 1)
    path = path.with_suffix(".tiff" if "tiff" in path.name else ".png")
    expected = make(path, astronaut)
    got = load_image(path)
    assert got.dtype == np.uint8 and got.shape == astronaut.shape
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_empty_and_heic_photos_say_what_to_do(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg is empty \(0 bytes\).*complete photo"):
        load_image(empty)
    heic = tmp_path / "IMG_0001.HEIC"  # an iPhone photo: ISO-BMFF with a heic brand, which OpenCV cannot decode
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(ImageLoadError, match=r"IMG_0001\.HEIC is a HEIC/HEIF photo.*Convert it to JPEG"):
        load_image(heic)


@pytest.mark.parametrize("shape", [(512, 4000), (4000, 512)], ids=["banner", "tower"])
def test_face_on_a_large_flat_background_is_found(astronaut, shape):
    """A portrait pasted into a white banner: detection used to shrink it by the long side and equalise the
    histogram of a mostly white image, and found no face."""
    h, w = shape
    canvas = np.full((h, w, 3), 255, np.uint8)
    y, x = (h - 512) // 2, (w - 512) // 2
    canvas[y:y + 512, x:x + 512] = astronaut
    plain = FaceCropper().crop(astronaut, "astronaut")
    crop = FaceCropper().crop(canvas, "banner")
    assert crop.n_faces == 1
    assert np.allclose(np.array(crop.box) - [x, y, x, y], plain.box, atol=12)


def test_renderer_finds_the_face_before_scaling_a_banner_down(astronaut):
    """Renderer.prepare scales portraits to 1280 px on the long side; it used to do that before detection, so a
    face in a 4000x512 banner (164 px tall after scaling) was not found. The crop is now taken at full size and
    its matrix moved to the scaled canvas: warping the canvas with it gives the same crop."""
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.render import MAX_OUTPUT_SIDE, Renderer

    canvas = np.full((512, 4000, 3), 255, np.uint8)
    canvas[:, 1744:2256] = astronaut
    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))
    portrait = renderer.prepare(canvas, "banner.png")
    h, w = portrait.image.shape[:2]
    assert max(h, w) == MAX_OUTPUT_SIDE
    s = w / 4000
    plain = FaceCropper().crop(astronaut)
    assert np.allclose(np.array(portrait.face.box), (np.array(plain.box) + [1744, 0, 1744, 0]) * s, atol=4)
    again = cv2.warpAffine(portrait.image, portrait.face.matrix, (256, 256), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(again.astype(int) - portrait.face.crop).mean() < 12


# ------------------------------------------------------------------------------------------------ audio
def _float_wav(path, samples: np.ndarray, sr: int) -> None:
    """IEEE-float mono WAV (format tag 3), written by hand: the standard library writes PCM only."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _tone(n: int, sr: int, amp: float) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * 220 * np.arange(n) / sr)).astype(np.float32)


def test_float_wav_with_nan_inf_and_overs_decodes_finite_and_in_range(tmp_path):
    x = _tone(16000, 16000, 3.0)  # peaks at 3x full scale (float headroom)
    x[100:200], x[300], x[400] = np.nan, np.inf, -np.inf
    _float_wav(tmp_path / "broken.wav", x, 16000)
    clip = decode_audio(tmp_path / "broken.wav")
    assert np.isfinite(clip.samples).all()
    assert np.abs(clip.samples).max() == pytest.approx(1.0, abs=1e-6)
    # a gain, not a clip: the waveform keeps its shape
    good = np.isfinite(x)
    assert np.allclose(clip.samples[0][good], x[good] / 3.0, atol=1e-5)
    assert not clip.samples[0][100:200].any()


def test_render_with_a_nan_float_wav_writes_the_mp4(tmp_path, astronaut):
    """Was: a traceback from the AAC encoder (avcodec_send_frame returned EINVAL) after the whole render."""
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    x = _tone(12000, 16000, 0.4)
    x[5000:5100] = np.nan
    _float_wav(tmp_path / "nan.wav", x, 16000)
    out = tmp_path / "o.mp4"
    assert core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "nan.wav"), "--out", str(out),
                      "--synthetic-weights", "tiny", "--device", "cpu"]) == 0
    assert out.stat().st_size > 0


# ------------------------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("out, expected", [
    ("folder", r"--out .*folder is a folder; give a file name such as .*folder/out\.mp4"),
    ("clip.mov", r"--out must end in \.mp4 \(got .*clip\.mov; Headcast writes \.mp4 only\)\. Use e\.g\. .*clip\.mp4"),
    ("video", r"--out must end in \.mp4 \(got .*video\)\. Use e\.g\. .*video\.mp4"),
], ids=["folder", "mov", "no-suffix"])
def test_output_path_mistakes_are_one_sentence(tmp_path, capsys, out, expected):
    (tmp_path / "folder").mkdir()
    (tmp_path / "p.png").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    rc = core_main(["render", "--portrait", str(tmp_path / "p.png"), "--audio", str(tmp_path / "a.wav"),
                    "--out", str(tmp_path / out), "--synthetic-weights", "tiny"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err


def test_full_disk_while_saving_the_motion_dump_names_that_file(tmp_path, astronaut, capsys, monkeypatch):
    """Was: 'error: cannot write None: No space left on device' (the --out name, absent with --dump-motion)."""
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    _float_wav(tmp_path / "a.wav", _tone(12000, 16000, 0.4), 16000)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    dump = tmp_path / "m.npz"
    rc = core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "a.wav"),
                    "--dump-motion", str(dump), "--synthetic-weights", "tiny", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"error: cannot write {dump}: No space left on device. Free some space" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "p.png"]  # no temporary name left behind


# ------------------------------------------------------------------------------------------------ surround
def test_downmix_keeps_sides_drops_lfe_and_cannot_clip():
    from core.audio.io import default_layout, downmix_matrix

    m = downmix_matrix(default_layout(6))  # FL FR FC LFE BL BR
    assert m[0, 0] > 0 and m[1, 0] == 0 and m[1, 1] > 0 and m[0, 1] == 0  # fronts stay on their side
    assert m[0, 2] == m[1, 2] > 0  # centre into both
    assert not m[:, 3].any()  # LFE dropped
    assert m.sum(axis=1).max() <= 1.0 + 1e-6  # full scale everywhere cannot clip
    assert downmix_matrix(default_layout(10)).shape == (2, 10)  # more channels than named ones


def _wav_6ch(path, samples: np.ndarray, sr: int) -> None:
    """(6, n) float -> 16-bit PCM WAV without a channel mask (the WAV order FL FR FC LFE BL BR)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((samples.T * 32767).astype("<i2").tobytes())


def test_render_folds_a_51_file_to_stereo_not_dual_mono(tmp_path, astronaut):
    """Was: every channel averaged into both sides (5.1 became mono, with the LFE mixed into the speech)."""
    import av

    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    sr, n = 48000, 36000
    six = np.zeros((6, n), np.float32)
    six[0] = _tone(n, sr, 0.5)  # speech on the front left only
    six[3] = _tone(n, sr, 0.9)  # a loud LFE
    _wav_6ch(tmp_path / "surround.wav", six, sr)
    out = tmp_path / "o.mp4"
    assert core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "surround.wav"),
                      "--out", str(out), "--synthetic-weights", "tiny", "--device", "cpu"]) == 0
    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert audio.shape[0] == 2
    left, right = np.abs(audio[:, 4000:-4000]).max(axis=1)
    assert left > 0.1 and right < 0.02, (left, right)


def test_a_files_own_channel_layout_is_folded_by_name(tmp_path):
    """A 5.1(side) FLAC names its channels FL FR FC LFE SL SR: the left surround folds into the left side."""
    import av

    sr, n = 48000, 4800
    with av.open(str(tmp_path / "side.flac"), "w") as c:
        s = c.add_stream("flac", rate=sr, layout="5.1(side)")
        x = np.zeros((n, 6), np.int16)
        x[:, 4] = 16000  # SL only
        frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="5.1(side)")
        frame.sample_rate = sr
        for packet in (*s.encode(frame), *s.encode(None)):
            c.mux(packet)
    clip = decode_audio(tmp_path / "side.flac")
    assert clip.layout == ("FL", "FR", "FC", "LFE", "SL", "SR")
    left, right = np.abs(clip.stereo()).max(axis=1)
    assert left > 0.1 and right == 0


def test_silent_audio_renders_with_a_note(tmp_path, astronaut, capsys):
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    _float_wav(tmp_path / "silence.wav", np.zeros(12000, np.float32), 16000)
    dump = tmp_path / "m.npz"
    assert core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "silence.wav"),
                      "--dump-motion", str(dump), "--synthetic-weights", "tiny", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "silence.wav is silent (no sample above -80 dBFS): the face will not speak" in err
    assert dump.is_file()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".tiff", ".jpg", ".webp"])
def test_every_exif_orientation_ends_upright(tmp_path, astronaut, orientation, suffix):
    """Stored pixels + orientation tag -> the upright photo, as a viewer shows it. Was: TIFF turned twice
    (OpenCV's TIFF decoder already applies the tag)."""
    from PIL import Image

    upright = np.ascontiguousarray(astronaut[:, :400])  # not square: a wrong turn changes the shape
    to_stored = {1: lambda x: x, 2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
                 5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, 1), 7: lambda x: x[::-1, ::-1].swapaxes(0, 1),
                 8: lambda x: np.rot90(x, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(np.ascontiguousarray(to_stored(upright))).save(path, exif=exif, quality=95, lossless=True)
    got = load_image(path)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright).mean() < 3


@pytest.mark.parametrize("opaque", [True, False], ids=["opaque", "half-transparent"])
def test_big_rgba_png_loads_without_float_copies(tmp_path, opaque):
    """An 8000x6000 RGBA PNG took 2.3 GB and 19 s (float32 compositing, and Pillow decoding the whole PNG again
    to look for EXIF); measured after: 0.54 GB, 4.4 s. Here: peak Python-side memory at 2000x1500."""
    import tracemalloc

    h, w = 1500, 2000
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., 3] = 255 if opaque else 128
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), rgba, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    tracemalloc.start()
    try:
        got = load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = rgba[..., 2::-1].astype(int) if opaque else \
        (rgba[..., 2::-1].astype(int) * 128 + 255 * 127 + 127) // 255
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert peak < 8 * h * w * 4, f"peak {peak / 1e6:.0f} MB for a {h * w * 4 / 1e6:.0f} MB image"


def _extensible_wav(path, samples: np.ndarray, sr: int, bits: int, tag: int) -> None:
    """(channels, n) -> WAVE_FORMAT_EXTENSIBLE (how DAWs write 24-bit and multichannel files); tag 1 PCM, 3 float."""
    ch = samples.shape[0]
    if tag == 3:
        data = samples.T.astype("<f4" if bits == 32 else "<f8").tobytes()
    else:
        ints = np.ascontiguousarray(np.round(samples.T * (2 ** (bits - 1) - 1)).astype("<i4"))
        data = ints.astype("<i2").tobytes() if bits == 16 else \
            np.ascontiguousarray(ints.view(np.uint8).reshape(-1, 4)[:, :3]).tobytes()
    width = bits // 8
    guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, ch, sr, sr * ch * width, ch * width, bits, 22, bits, (1 << ch) - 1) + guid
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("bits, tag, channels", [(24, 1, 6), (16, 1, 2), (32, 3, 1), (64, 3, 2)],
                         ids=["ext-24bit-5.1", "ext-16bit-stereo", "ext-float32", "ext-float64"])
def test_extensible_and_float_wav_load_without_pyav_as_with_it(tmp_path, monkeypatch, bits, tag, channels):
    """Without PyAV (the lent GPU machine) only plain PCM loaded: Python 3.11's `wave` rejects
    WAVE_FORMAT_EXTENSIBLE and float."""
    sr, n = 48000, 9600
    samples = np.stack([_tone(n, sr, 0.5 / (c + 1)) for c in range(channels)])
    path = tmp_path / "daw.wav"
    _extensible_wav(path, samples, sr, bits, tag)
    with_av = decode_audio(path)
    monkeypatch.setitem(__import__("sys").modules, "av", None)
    without = decode_audio(path)
    assert without.rate == with_av.rate == sr
    assert without.samples.shape == with_av.samples.shape == (channels, n)
    assert np.abs(without.samples - with_av.samples).max() < 1e-4


def test_long_output_names_work_and_too_long_ones_are_one_sentence(tmp_path, astronaut, capsys):
    """A valid 240-byte name failed with 'folder is not writable (File name too long)' (the temporary name added
    ~30 bytes); a 260-byte one raised a raw OSError from Path.is_dir."""
    portrait = tmp_path / "p.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    _float_wav(tmp_path / "a.wav", _tone(12000, 16000, 0.4), 16000)
    long = tmp_path / ("é" * 118 + ".npz")  # 240 bytes in UTF-8: allowed
    assert core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "a.wav"),
                      "--dump-motion", str(long), "--synthetic-weights", "tiny", "--device", "cpu"]) == 0
    assert long.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.png", "a.wav", long.name])
    capsys.readouterr()
    too_long = tmp_path / ("y" * 260 + ".mp4")
    assert core_main(["render", "--portrait", str(portrait), "--audio", str(tmp_path / "a.wav"),
                      "--out", str(too_long), "--synthetic-weights", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "is too long a file name (264 bytes; file systems allow 255). Choose a shorter name." in err


def test_temporaries_of_long_names_are_found_again(tmp_path):
    from core.atomic import stale_temporaries, temporary_path

    target = tmp_path / ("z" * 250)
    tmp = temporary_path(target, ".partial.mp4")
    assert len(tmp.name.encode()) <= 255
    dead = tmp.with_name(tmp.name.replace(f".{__import__('os').getpid()}.", ".999999999."))
    tmp.rename(dead)
    assert stale_temporaries(target, ".partial.mp4") == [dead]


def test_dc_offset_does_not_reach_the_models(tmp_path):
    """A constant offset is inaudible but changed DiT/JoyVASA motion: mono() (what the models take) removes it,
    the clip's own samples (what the mp4 carries) keep it."""
    x = _tone(16000, 16000, 0.3)
    _float_wav(tmp_path / "dc.wav", x + 0.4, 16000)
    _float_wav(tmp_path / "clean.wav", x, 16000)
    dc, clean = decode_audio(tmp_path / "dc.wav"), decode_audio(tmp_path / "clean.wav")
    assert dc.samples.mean() == pytest.approx(0.4, abs=1e-3)
    assert np.abs(dc.mono() - clean.mono()).max() < 1e-3
