"""The renderer API on the tiny configuration: shapes, batching, caching and paste-back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import layout
from core.device import pick_device
from core.face import psnr
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import Renderer


@pytest.fixture(scope="module")
def renderer():
    return Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))


@pytest.fixture(scope="module")
def portrait(renderer, astronaut):
    return renderer.prepare(astronaut, "astronaut")


def test_prepare_is_cached(renderer, portrait, astronaut):
    assert renderer.prepare(astronaut.copy(), "again") is portrait
    assert portrait.feature_3d.shape == (1, 8, 4, 16, 16)
    assert portrait.x_s.shape == (1, 21, 3)


@pytest.mark.slow
def test_render_shapes_and_batch_equivalence(renderer, portrait):
    motion = np.zeros((4, layout.MOTION_DIM), np.float32)
    motion[1, layout.YAW] = 25
    motion[2, layout.EXP] = 0.02
    motion[3, layout.SCALE] = 0.1
    frames = renderer.render(portrait, motion).copy()
    assert frames.shape == (4, 512, 512, 3) and frames.dtype == np.uint8
    single = np.concatenate([renderer.render(portrait, motion[i : i + 1]) for i in range(4)])
    assert np.abs(frames.astype(int) - single).max() <= 1


def test_motion_changes_only_the_face_region(renderer, portrait, astronaut):
    motion = np.zeros((2, layout.MOTION_DIM), np.float32)
    motion[1, layout.YAW] = 30
    frames = renderer.render(portrait, motion)
    y0, y1, x0, x1 = portrait.roi
    assert np.abs(frames[0, y0:y1, x0:x1].astype(int) - frames[1, y0:y1, x0:x1]).mean() > 0.5
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(frames[:, outside], np.broadcast_to(astronaut[outside], frames[:, outside].shape))


def test_paste_back_of_the_crop_reproduces_the_portrait(renderer, portrait, astronaut):
    """If the generator returned the source crop itself, the composite must be the portrait again."""
    crop = torch.from_numpy(portrait.face.crop).permute(2, 0, 1)[None].float() / 255
    crop = torch.nn.functional.interpolate(crop, size=128, mode="bilinear", align_corners=False)
    frame = renderer.composite(portrait, crop)[0].numpy()
    y0, y1, x0, x1 = portrait.roi
    assert psnr(frame[y0:y1, x0:x1], astronaut[y0:y1, x0:x1]) > 30


def test_stitching_changes_driving_keypoints(portrait):
    models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    with torch.no_grad():
        models.stitching.mlp[-1].bias.fill_(0.05)
    spec = pick_device("cpu")
    on, off = Renderer(models, spec, stitching=True), Renderer(models, spec, stitching=False)
    motion = torch.zeros(1, layout.MOTION_DIM)
    assert not torch.allclose(on.driving_keypoints(portrait, motion), off.driving_keypoints(portrait, motion))
    # zero motion without stitching reproduces the source keypoints exactly
    assert torch.allclose(off.driving_keypoints(portrait, motion), portrait.x_s, atol=1e-6)


def test_out_buffer_is_reused(renderer, portrait):
    out = torch.empty((2, *portrait.image.shape), dtype=torch.uint8)
    frames = renderer.render(portrait, np.zeros((2, layout.MOTION_DIM), np.float32), out=out)
    assert frames.ctypes.data == out.data_ptr()


def test_device_paste_back_matches_the_numpy_reference(renderer, portrait):
    """The renderer's on-device paste-back equals core.face.paste_back applied to the generator's output."""
    from core.face import paste_back
    from core.render import feather_mask

    motion = np.zeros((1, layout.MOTION_DIM), np.float32)
    faces = renderer.render_faces(portrait, torch.from_numpy(motion))
    frame = renderer.render(portrait, motion)[0]
    face = (faces[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    ref = paste_back(portrait.image, face, portrait.face.matrix, feather_mask(face.shape[0]))
    y0, y1, x0, x1 = portrait.roi
    # stand-in weights make a noise-like face, so a half-pixel misregistration alone drops this to ~21 dB
    assert psnr(frame[y0:y1, x0:x1], ref[y0:y1, x0:x1]) > 38
    assert np.abs(frame.astype(int) - portrait.image).max() > 20  # the generated face really was pasted


def test_bad_motion_shape_is_rejected(renderer, portrait):
    with pytest.raises(ValueError, match=r"\(B, 70\)"):
        renderer.render(portrait, np.zeros((2, 69), np.float32))


@pytest.mark.slow
def test_render_bench_prints_its_table(capsys):
    """`python -m core bench render` at the tiny size, eager only: one row per batch with every stage."""
    from core.__main__ import main

    assert main(["bench", "render", "--size", "tiny", "--device", "cpu", "--frames", "1", "--batches", "1,2",
                 "--no-compile", "--backends", "eager", "--precisions", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "STAND-IN weights" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("eager fp32")]
    assert [r[2] for r in rows] == ["1", "2"] and all(len(r) == 13 for r in rows)
    assert float(rows[0][-3]) == 1.0  # eager fp32 batch 1 is the baseline
    assert float(rows[0][-2]) == 0.0 and rows[0][-1] == "inf"  # the baseline's error vs itself
    stages = [float(v) for v in rows[0][3:8]]
    assert abs(sum(stages) - float(rows[0][8])) < 0.05 * float(rows[0][8]) + 0.1  # stages add up to the total


def test_prepare_from_a_path_names_the_file_without_a_face(renderer, tmp_path, astronaut):
    import cv2

    from core.face import NoFaceError

    path = tmp_path / "sky.png"
    cv2.imwrite(str(path), np.full((300, 400, 3), (235, 180, 120), np.uint8))
    with pytest.raises(NoFaceError, match=r"sky\.png"):
        renderer.prepare(path)
    good = tmp_path / "astronaut.png"
    cv2.imwrite(str(good), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    assert renderer.prepare(good) is renderer.prepare(astronaut)  # same pixels, same content hash: one entry


def test_render_bench_leaves_emulated_bf16_out_of_its_default_official_rows(monkeypatch):
    """On a CPU without native bf16 an official frame takes tens of minutes in bf16: the default run skips the row
    (and says so); asking for it measures it; a CPU with AVX512-BF16/AMX gets it by default."""
    import argparse

    import torch

    from core.bench import render as bench
    from core.device import DeviceSpec

    cpu = DeviceSpec(torch.device("cpu"), torch.float32)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    default, asked, tiny = (parser.parse_args(a) for a in ([], ["--precisions", "fp32,bf16"], ["--size", "tiny"]))
    for native, expect in ((False, False), (True, True)):
        monkeypatch.setattr(bench, "_native_bf16", lambda native=native: native)
        assert any(p == "bf16" for _, p in bench.variants_for(cpu, default)) == expect
        assert any(p == "bf16" for _, p in bench.variants_for(cpu, asked))
        assert any(p == "bf16" for _, p in bench.variants_for(cpu, tiny))  # tiny bf16 takes seconds
