"""Lite mode (issue 11): the atlas, the lite renderer against the full one, projection, caching, selection.

The tiny stand-in networks barely react to the random lip / eye MLPs (a keypoint delta of ~3e-4), so the
fixture swaps in linear retargeting MLPs (core.bench.lite.responsive_models, shared with the benchmark) that
move the lip and eyelid keypoints by 0.6 x the ratio change: the mouth levels then differ by ~8 grey levels on
average (up to ~190), which makes equality and smoothness checks meaningful. Everything else (warping, SPADE,
stitching, paste-back) is the real tiny renderer.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core import layout
from core.bench.lite import responsive_models
from core.device import pick_device
from core.lite.atlas import AtlasCancelled, AtlasError, AtlasSpec, AtlasStore, build_atlas
from core.lite.renderer import LiteRenderer
from core.liveportrait import LivePortraitConfig
from core.motion.retarget_source import RetargetMotionSource
from core.render import Renderer

GRID = AtlasSpec(lip_levels=4, eye_levels=2)


@pytest.fixture(scope="module")
def full():
    return Renderer(responsive_models(LivePortraitConfig.tiny()), pick_device("cpu"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return AtlasStore(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def lite(full, store):
    return LiteRenderer(full, GRID, store)


@pytest.fixture(scope="module")
def portrait(lite, astronaut):
    return lite.prepare(astronaut, "astronaut")


def retarget_rows(full, portrait, lip, eye) -> np.ndarray:
    """What the retarget source emits at these ratios with the head at rest."""
    source = RetargetMotionSource(full.models)
    source.reset(portrait)
    rows = layout.neutral(len(lip))
    rows[:, layout.EXP] = source.expression(np.asarray(lip), np.asarray(eye))
    return rows


def test_grid_points_equal_the_full_renderer(full, lite, portrait):
    lip, eye = np.meshgrid(GRID.lip_grid(), GRID.eye_grid())
    rows = retarget_rows(full, portrait, lip.ravel(), eye.ravel())
    expected = full.render(portrait.base, rows)
    got = lite.render(portrait, rows)
    assert got.shape == expected.shape == (GRID.entries, *portrait.image.shape)
    assert np.abs(got.astype(int) - expected).max() <= 1  # uint8 rounding of the stored face
    # the levels really differ in the face region (the check above is not trivially true)
    y0, y1, x0, x1 = portrait.roi
    face = expected[:, y0:y1, x0:x1].astype(int)
    assert np.abs(face[0] - face[GRID.lip_levels - 1]).mean() > 2  # mouth closed vs open
    assert np.abs(face[0] - face[GRID.lip_levels]).mean() > 2  # eyes closed vs open


def test_slow_mouth_sweep_changes_smoothly(full, lite, portrait):
    """32 frames per mouth level: each frame differs from the last by about 1/32 of a level step, never a jump."""
    steps = 32
    lip = np.linspace(0, GRID.max_lip_ratio, steps * (GRID.lip_levels - 1) + 1)
    rows = retarget_rows(full, portrait, lip, np.full(len(lip), GRID.open_eye_ratio))
    frames = lite.render(portrait, rows).astype(np.int16)
    step = np.abs(np.diff(frames, axis=0)).max(axis=(1, 2, 3))
    faces = portrait.atlas.faces[-1].astype(np.int16)
    level_jump = np.abs(np.diff(faces, axis=0)).max()
    assert level_jump > 60  # neighbouring levels differ a lot somewhere...
    # ...yet no frame moves more than its share of that jump plus rounding (two roundings of <= 0.5 each side)
    assert step.max() <= np.ceil(level_jump / steps) + 2, (step.max(), level_jump)
    # a renderer snapping to the nearest level would fail the same bound
    nearest = np.round(lip / GRID.max_lip_ratio * (GRID.lip_levels - 1)).astype(int)
    snapped = faces[nearest]
    assert np.abs(np.diff(snapped, axis=0)).max() > np.ceil(level_jump / steps) + 2


def test_projection_recovers_retarget_ratios(full, portrait):
    rng = np.random.default_rng(0)
    lip, eye = rng.uniform(0, GRID.max_lip_ratio, 50), rng.uniform(0, GRID.open_eye_ratio, 50)
    got_lip, got_eye = portrait.projection.ratios(retarget_rows(full, portrait, lip, eye))
    assert np.abs(got_lip - lip).max() < 1e-4 and np.abs(got_eye - eye).max() < 1e-4


def test_projection_of_other_motion_sources(portrait):
    """DiT / JoyVASA rows: any expression; the mouth reading follows the lip direction, the rest is ignored."""
    proj = portrait.projection
    rng = np.random.default_rng(1)
    rows = layout.neutral(40)
    rows[:, layout.EXP] = rng.normal(0, 0.02, (40, 63))  # unrelated expression: stays near rest, finite
    lip_pos, eye_pos = proj.positions(rows)
    assert np.isfinite(lip_pos).all() and lip_pos.min() >= 0 and lip_pos.max() <= GRID.lip_levels - 1
    assert eye_pos.min() >= 0 and eye_pos.max() <= GRID.eye_levels - 1
    opening = layout.neutral(6)
    top = proj.lip_on_a[-1]  # the reading of the widest mouth the lip MLP table holds (ratio 1)
    opening[:, layout.EXP] = proj.rest + np.linspace(0, 1.2 * top, 6)[:, None] * proj.a  # more and more open
    lip_pos, _ = proj.positions(opening)
    assert np.all(np.diff(lip_pos) >= 0) and lip_pos[-1] == GRID.lip_levels - 1  # beyond the atlas: clamped


def test_head_translation_shifts_the_face_and_nothing_else(lite, portrait, astronaut):
    """tx moves the keypoints by tx * crop/2 crop pixels along the crop's x axis: the face region moves by that
    vector mapped into the canvas, under the same paste-back mask; outside the face region nothing changes."""
    import cv2

    crop_shift = 6.0  # crop pixels
    rows = layout.neutral(2)
    rows[1, layout.T.start] = crop_shift / (portrait.face.crop.shape[0] / 2)
    affines, moves = portrait.projection.affines(rows)
    assert moves.tolist() == [False, True]
    expected = np.linalg.solve(portrait.face.matrix[:, :2], [crop_shift, 0.0])  # crop vector -> canvas vector
    assert np.allclose(affines[1], [[1, 0, expected[0]], [0, 1, expected[1]]], atol=1e-5)
    frames = lite.render(portrait, rows)
    y0, y1, x0, x1 = portrait.roi
    still = portrait.atlas.faces[-1, 0]
    moved = cv2.warpAffine(still, affines[1], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(float)
    m = portrait.mask[..., None]
    assert np.abs(frames[1, y0:y1, x0:x1] - (portrait.background * (1 - m) + moved * m)).max() <= 1
    assert np.abs(frames[1, y0:y1, x0:x1].astype(int) - frames[0, y0:y1, x0:x1]).mean() > 1
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(frames[:, outside], np.broadcast_to(astronaut[outside], frames[:, outside].shape))
    scaled = layout.neutral(1)
    scaled[0, layout.SCALE] = 0.1
    affine = portrait.projection.affines(scaled)[0][0]
    assert np.isclose(np.linalg.det(affine[:, :2]), 1.1**2, rtol=1e-3)


def test_render_interface_and_buffers(lite, portrait):
    rows = layout.neutral(3)
    a = lite.render(portrait, rows)
    b = lite.render(portrait, torch.from_numpy(rows))
    assert not np.shares_memory(a, b)  # `a` is still held: its array is not handed out again
    out = torch.empty((3, *portrait.image.shape), dtype=torch.uint8)
    got = lite.render(portrait, rows, out=out)
    assert got.ctypes.data == out.data_ptr() and np.array_equal(got, a)
    first = a[0]  # a frame kept (as the engine's queue keeps it) holds its whole batch array
    del a, b, got
    c = lite.render(portrait, rows)
    assert not np.shares_memory(c, first)
    del c, first
    pooled = len(portrait.pool[3])
    addresses = {lite.render(portrait, rows).ctypes.data for _ in range(5)}
    assert len(addresses) == 1 and len(portrait.pool[3]) == pooled  # released arrays reused, nothing allocated
    with pytest.raises(ValueError, match=r"\(B, 70\)"):
        lite.render(portrait, np.zeros((2, 69), np.float32))
    assert lite.models is lite.full.models and lite.spec is lite.full.spec
    assert portrait.x_s is portrait.base.x_s  # motion sources read the prepared portrait through it


def test_atlas_is_cached_keyed_and_rebuilt_when_damaged(full, store, portrait, astronaut, monkeypatch):
    import core.lite.renderer as renderer_module

    assert portrait.atlas.path.is_file() and portrait.atlas.path.parent == store.root / "atlas"

    def no_build(*args, **kwargs):
        raise AssertionError("the atlas was rebuilt although it is in the cache")

    monkeypatch.setattr(renderer_module, "build_atlas", no_build)
    again = LiteRenderer(full, GRID, store).prepare(astronaut)  # a new process would do exactly this
    assert np.array_equal(again.atlas.faces, portrait.atlas.faces) and again.atlas.path == portrait.atlas.path
    same = LiteRenderer(full, GRID, store)
    assert same.atlas_key(full.prepare(astronaut, face=0)) == same.atlas_key(portrait.base)  # 0 = the largest
    other = LiteRenderer(full, AtlasSpec(3, 1), store)
    assert other.atlas_key(portrait.base) != LiteRenderer(full, GRID, store).atlas_key(portrait.base)
    with pytest.raises(AssertionError, match="rebuilt"):
        other.prepare(astronaut)
    with pytest.raises(AtlasError, match="no lite-mode atlas"):
        LiteRenderer(full, AtlasSpec(3, 1), store, build=False).prepare(astronaut)
    monkeypatch.undo()
    # a damaged file is moved aside and rebuilt, with progress
    path = portrait.atlas.path
    path.write_bytes(b"not an npz")
    seen = []
    rebuilt = LiteRenderer(full, GRID, store).prepare(astronaut, on_progress=lambda d, n: seen.append((d, n)))
    assert seen[0] == (0, GRID.entries) and seen[-1] == (GRID.entries, GRID.entries)
    assert path.with_name(path.name + ".bad").is_file() and path.is_file()
    assert np.array_equal(rebuilt.atlas.faces, portrait.atlas.faces)


def test_cancelled_build_writes_nothing(full, tmp_path, portrait):
    calls = []
    with pytest.raises(AtlasCancelled):
        build_atlas(full, portrait.base, AtlasSpec(3, 1), cancel=lambda: calls.append(1) or len(calls) > 1)
    assert len(calls) == 2
    store = AtlasStore(tmp_path)
    lite = LiteRenderer(full, AtlasSpec(3, 1), store)
    with pytest.raises(AtlasCancelled):
        lite.prepare(portrait.image, cancel=lambda: True)
    assert not (tmp_path / "atlas").exists() or not any((tmp_path / "atlas").iterdir())


def test_engine_streams_lite_frames(full, lite, portrait, speech_16k):
    """The engine runs the lite renderer with the retarget source from audio, like `render` and `live`."""
    from core.engine import CallbackSink, Engine, EngineSettings, FileSource

    audio = speech_16k[: 16000 * 2]
    engine = Engine(lite, RetargetMotionSource(), EngineSettings(max_batch=4))
    frames = []
    engine.add_sink(CallbackSink(lambda frame, info: frames.append(frame.copy())))
    engine.set_portrait(portrait.image)
    engine.start(FileSource(audio, realtime=False))
    assert engine.wait(60)
    engine.stop()
    assert len(frames) == 50
    y0, y1, x0, x1 = portrait.roi
    change = [np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1]).mean() for a, b in zip(frames, frames[1:])]
    assert max(change) > 0.5  # speech moves the mouth (and the head sways)


def test_auto_measures_once_remembers_and_says_why(full, portrait, tmp_path, monkeypatch):
    import json

    import core.lite.select as select

    calls = []
    monkeypatch.setattr(select, "measure_full_fps", lambda r, p, batch=1: calls.append(batch) or 3.0)
    first = select.choose_renderer("auto", full, portrait.base, root=tmp_path)
    second = select.choose_renderer("auto", full, portrait.base, root=tmp_path)
    assert first.kind == second.kind == "lite" and calls == [1]
    assert not first.remembered and second.remembered and second.full_fps == 3.0
    assert "measured 3.0 fps" in first.reason and "below the 25 fps" in first.reason
    assert "remembered" in second.reason
    speeds = json.loads((tmp_path / select.SPEED_FILE).read_text())
    (key,) = speeds
    speeds[key]["fps"] = 90.0  # the same renderer on a fast GPU
    (tmp_path / select.SPEED_FILE).write_text(json.dumps(speeds))
    assert select.choose_renderer("auto", full, portrait.base, root=tmp_path).kind == "full"
    speeds[key]["fps"] = 0.125  # official size on a laptop CPU: seconds a frame, said as such
    (tmp_path / select.SPEED_FILE).write_text(json.dumps(speeds))
    assert "remembered 8.0 s a frame" in select.choose_renderer("auto", full, portrait.base, root=tmp_path).reason
    (tmp_path / select.SPEED_FILE).write_text("{broken")
    assert select.choose_renderer("auto", full, portrait.base, root=tmp_path).kind == "lite" and len(calls) == 2
    assert select.choose_renderer("lite", full, portrait.base, root=tmp_path).reason == \
        "lite renderer chosen explicitly"
    with pytest.raises(ValueError, match="full, lite, auto"):
        select.choose_renderer("fast", full, portrait.base)


def test_measure_full_fps_times_the_real_renderer(full, portrait):
    from core.lite.select import measure_full_fps

    fps = measure_full_fps(full, portrait.base)
    assert 0 < fps < 1000


def test_render_cli_with_the_lite_renderer(tmp_path, monkeypatch, astronaut, speech_wav, capsys):
    import av
    import cv2

    from core.__main__ import main as core_main

    monkeypatch.setenv("HEADCAST_CACHE_DIR", str(tmp_path / "cache"))
    png, out = tmp_path / "astronaut.png", tmp_path / "talk.mp4"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    args = ["render", "--portrait", str(png), "--audio", str(speech_wav), "--out", str(out),
            "--synthetic-weights", "tiny", "--renderer", "lite"]
    assert core_main(args + ["--atlas", "2by1"]) == 2
    assert "--atlas" in capsys.readouterr().err and not out.exists()
    assert core_main(args + ["--atlas", "2x1"]) == 0
    err = capsys.readouterr().err
    assert "renderer: lite renderer chosen explicitly" in err and "lite atlas:" in err
    assert len(list((tmp_path / "cache" / "atlas").glob("*.npz"))) == 1
    with av.open(str(out)) as c:
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
    assert frames > 100


@pytest.mark.slow
def test_lite_bench_prints_its_table(capsys):
    from core.__main__ import main as core_main

    assert core_main(["bench", "lite", "--size", "tiny", "--device", "cpu", "--atlas", "2x1", "--frames", "10",
                      "--midpoints", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert set(rows) == {"512x512", "1280x720"}
    for row in rows.values():
        full_ms, lite_ms, ratio = float(row[1]), float(row[2]), float(row[5])
        assert abs(full_ms / lite_ms - ratio) <= 0.01 * ratio + 1  # the ratio is of the figures printed
        assert float(row[8]) > 0  # atlas size on disk
    assert "crossfade" in out and "flow-guided" in out


@pytest.mark.slow
def test_live_cli_with_the_lite_renderer_keeps_up(tmp_path, astronaut, speech_wav):
    """`python -m core live --renderer lite`: the atlas is built first (progress on stderr), then the stream
    renders at the frame rate within the latency budget; the stats JSON says which renderer ran and why."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    png, out = tmp_path / "astronaut.png", tmp_path / "s.json"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1",
           "HEADCAST_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "core", "live", "--portrait", str(png), "--input", str(speech_wav),
                        "--seconds", "5", "--synthetic-weights", "tiny", "--device", "cpu", "--renderer", "lite",
                        "--atlas", "3x2", "--stats-json", str(out), "--quiet"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "lite atlas" in r.stderr and "; lite renderer chosen explicitly;" in r.stderr
    s = json.loads(out.read_text())
    assert s["renderer"] == "lite" and s["frames_emitted"] > 0
    assert s["render_fps_recent"] >= 20 and s["keeping_up"], s  # one lite frame costs milliseconds
    assert s["latency_ms_p95"] <= s["latency_budget_ms"], s


def test_auto_does_not_count_the_first_call():
    """A GPU's first render carries one-off costs (context, autotuning) far above a frame's: timing it would send a
    fast GPU to lite mode. The figure comes from the calls after it."""
    import core.lite.select as select

    class FirstCallSlow:
        calls = 0

        def render(self, portrait, motion):
            self.calls += 1
            time.sleep(0.6 if self.calls == 1 else 0.002)

    r = FirstCallSlow()
    fps = select.measure_full_fps(r, portrait=None)
    assert fps > 100 and r.calls > 2  # ~2 ms a frame, timed for half a second's worth of calls (capped)


def test_remembered_speed_is_per_backend(full, portrait, tmp_path, monkeypatch):
    """A speed measured with one backend is not reused for another (issue 23: the key left the backend out)."""
    import core.lite.select as select
    from core.backends.runtime import FaceBackend

    calls = []
    monkeypatch.setattr(select, "measure_full_fps", lambda r, p, batch=1: calls.append(r.backend.name) or 3.0)
    select.choose_renderer("auto", full, portrait.base, root=tmp_path)

    class Other(FaceBackend):
        kind = "other"

    monkeypatch.setattr(full, "backend", Other(full.models, full.spec))
    assert not select.choose_renderer("auto", full, portrait.base, root=tmp_path).remembered
    assert calls == ["eager", "other"]
