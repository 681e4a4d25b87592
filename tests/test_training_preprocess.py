"""preprocess: real short talking videos made with PyAV, bad inputs, resumable re-runs, parallel workers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from training.data import PACKED_DIR, load_clips
from training.preprocess import ModelSpec, PreprocessConfig, PreprocessError, preprocess

SPEC = ModelSpec(synthetic=True, device="cpu", threads=1)  # tiny LivePortrait + the stand-in speech model


def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, sr: int = 16000,
                fps: int = 30, faststart: bool = False) -> None:
    """H.264 video (+ AAC audio when given) with PyAV; `faststart`: the index at the front (as web videos)."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = None
        if audio is not None:
            a = out.add_stream("aac", rate=sr)
            a.layout = "mono"
        for f in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        if a is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            for i in range(0, len(pcm), 1024):
                frame = av.AudioFrame.from_ndarray(pcm[None, i: i + 1024], format="s16", layout="mono")
                frame.sample_rate = sr
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CPU is shared: one torch thread avoids oversubscription (about 10x faster here)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    return SPEC.build()[:3]


def make_talking_video(path: Path, astronaut: np.ndarray, text: str, seconds: float, fps: int = 30,
                       phase: float = 0.0) -> float:
    """The astronaut shifted a little each frame, with espeak-ng speech; returns the audio's length in seconds."""
    import cv2

    from core.audio.io import load_audio

    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    speech = load_audio(wav)[: int(seconds * 16000)]
    wav.unlink()
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(int(seconds * fps)):
        m = np.float32([[1, 0, 3 * np.sin(i / 5 + phase)], [0, 1, 2 * np.cos(i / 7 + phase)]])
        frames.append(cv2.warpAffine(small, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    write_video(path, frames, speech, fps=fps)
    return len(speech) / 16000


@pytest.fixture(scope="module")
def talking_video(tmp_path_factory, astronaut) -> tuple[Path, float]:
    """2 s at 30 fps."""
    folder = tmp_path_factory.mktemp("videos")
    return folder, make_talking_video(folder / "talk.mp4", astronaut, "Hello there, this is a test video.", 2.0)


@pytest.mark.slow
def test_preprocess_video_and_bad_inputs(tmp_path, talking_video, models, astronaut):
    folder, seconds = talking_video
    out = tmp_path / "data"
    cfg = PreprocessConfig(min_frames=20, val_fraction=0.0)
    manifest = preprocess(folder, out, models, cfg=cfg, progress=False)
    assert len(manifest["items"]) == 1 and not manifest["skipped"]
    clip = load_clips(out)[0]
    n = round(seconds * 25)
    assert abs(len(clip.motion) - n) <= 1  # 30 fps video resampled to 25 fps, cut to the audio
    assert clip.motion.shape[1] == 70 and clip.audio.shape == (len(clip.motion), models[1].dim)
    # long chunks: the app's streaming extractor with a 25-frame hop (tested against hop 1 in test_audio_features)
    stream = models[1].stream(hop_frames=cfg.audio_hop)
    from core.audio.io import load_audio

    samples = load_audio(folder / "talk.mp4")
    expect = np.concatenate((stream.push(samples).numpy(), stream.flush().numpy()))[: len(clip.audio)]
    np.testing.assert_allclose(clip.audio, expect, atol=1e-5)
    assert np.allclose(clip.motion[0], 0)  # relative to the first frame
    assert np.abs(clip.motion[1:]).max() > 0  # the face moved, the extractor saw it
    assert clip.envelope.max() > 0.01
    assert manifest["audio_config"]["lookahead_ms"] == models[1].config.lookahead_ms  # for the app's extractor

    # bad inputs next to the finished one: garbage .mp4, no audio, no face, 5 fps, truncated (header at the end,
    # and header first: the track then stops early)
    (folder / "broken.mp4").write_bytes(b"\x00garbage" * 500)
    write_video(folder / "silent.mp4", [astronaut[::2, ::2].copy()] * 30, None)
    write_video(folder / "noface.mp4", [np.full((128, 128, 3), 90, np.uint8)] * 30, np.zeros(16000, np.float32))
    write_video(folder / "slow.mp4", [astronaut[::2, ::2].copy()] * 10, np.zeros(32000, np.float32), fps=5)
    whole = (folder / "talk.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    write_video(folder / "fast.mp4", [np.roll(astronaut[::2, ::2], 4 * i, 1) for i in range(75)],
                np.zeros(48000, np.float32), fps=25, faststart=True)
    fast = (folder / "fast.mp4").read_bytes()
    (folder / "fast.mp4").write_bytes(fast[: len(fast) // 2])
    shard = out / (manifest["items"][0]["file"])
    before = shard.read_bytes()
    manifest = preprocess(folder, out, models, cfg=cfg, progress=False)
    reasons = {Path(s["video"]).name: s["skipped"] for s in manifest["skipped"]}
    assert "unreadable" in reasons["broken.mp4"]
    assert reasons["silent.mp4"] == "no audio track"
    assert reasons["noface.mp4"] == "no face in the first frame"
    assert "5.00 fps is below the 25 fps minimum" in reasons["slow.mp4"]
    assert "truncated" in reasons["cut.mp4"] and "WAV" not in reasons["cut.mp4"]
    assert "truncated" in reasons["fast.mp4"] and "WAV" not in reasons["fast.mp4"]
    assert len(manifest["items"]) == 1 and shard.read_bytes() == before  # finished video kept, not redone
    records = [json.loads(line) for p in sorted((out / "manifest").glob("*.jsonl")) for line in p.open()]
    assert len(records) == 1 + 6  # append-only: the first run's record, then one per new input

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreprocessError, match="No videos"):
        preprocess(empty, out, models, cfg=cfg, progress=False)
    assert shard.read_bytes() == before


@pytest.mark.slow
def test_model_trained_on_preprocessed_video_runs_in_the_app_source(tmp_path, talking_video, models):
    """preprocess -> train -> the exported file drives core.motion.generator.DiTMotionSource."""
    from core.motion.generator import DiTMotionSource
    from training.train import TrainConfig, train

    folder, _ = talking_video
    data = tmp_path / "data"
    preprocess(folder, data, models, cfg=PreprocessConfig(min_frames=20, val_fraction=0.0), progress=False)
    train(TrainConfig(data=str(data), out=str(tmp_path / "run"), steps=2, global_batch=2, workers=0, lengths=(10,),
                      warmup=1, threads=1, diffusion_steps=10, model=dict(layers=1, width=32, heads=2)))
    # the dataset recorded the stand-in speech model, so the app's source rebuilds it: no speech model to pass
    source = DiTMotionSource.create(tmp_path / "run" / "model.safetensors")
    source.reset()
    source.push_audio(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    rows = np.concatenate([source.pull(), source.flush()])
    assert rows.shape == (25, 70) and np.isfinite(rows).all()


@pytest.mark.slow
def test_two_workers_make_the_same_shards_as_one(tmp_path, astronaut):
    folder = tmp_path / "videos"
    folder.mkdir()
    texts = ("One two three four.", "The fox jumps.", "Good evening to you.", "Open the window now.")
    for i, text in enumerate(texts):
        make_talking_video(folder / f"v{i}.mp4", astronaut, text, 1.2, fps=25, phase=i)
    cfg = PreprocessConfig(min_frames=20, val_fraction=0.3)
    one = preprocess(folder, tmp_path / "one", SPEC, cfg=cfg, workers=1, progress=False)
    two = preprocess(folder, tmp_path / "two", SPEC, cfg=cfg, workers=2, progress=False)
    assert len(one["items"]) == 4 and not one["skipped"]
    assert [(r["name"], r["frames"], r["split"]) for r in one["items"]] == \
        [(r["name"], r["frames"], r["split"]) for r in two["items"]]
    packed = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / PACKED_DIR).rglob("*.*"))
    assert len(packed) >= 6
    for rel in packed:  # byte-identical arrays, offsets, names and pack info
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    for r in one["items"]:
        assert (tmp_path / "one" / r["file"]).read_bytes() == (tmp_path / "two" / r["file"]).read_bytes()


@pytest.mark.slow
def test_shards_across_machines_merge_into_one_dataset(tmp_path, talking_video):
    """--shard 0/2 and 1/2 into one folder (shared storage) == one run; the pack comes after both."""
    from training.data import pack, read_manifest

    folder, _ = talking_video
    (folder / "copy.mp4").write_bytes((folder / "talk.mp4").read_bytes())
    try:
        cfg = PreprocessConfig(min_frames=20, val_fraction=0.0)
        for i in range(2):
            preprocess(folder, tmp_path / "split", SPEC, cfg=cfg, shard=(i, 2), progress=False)
        pack(tmp_path / "split")
        whole = preprocess(folder, tmp_path / "whole", SPEC, cfg=cfg, progress=False)
    finally:
        (folder / "copy.mp4").unlink()
    split = read_manifest(tmp_path / "split")
    assert [r["name"] for r in split["items"]] == [r["name"] for r in whole["items"]] and len(whole["items"]) == 2
    assert len(list((tmp_path / "split" / "manifest").glob("part-*-of-002.jsonl"))) == 2
    a, b = load_clips(tmp_path / "split"), load_clips(tmp_path / "whole")
    assert all(np.array_equal(x.audio, y.audio) and np.array_equal(x.motion, y.motion) for x, y in zip(a, b))


@pytest.mark.slow
def test_chunked_features_stay_close_to_the_apps_streaming_features(tmp_path, models):
    """`--audio-hop 25` (fewer encodes) vs the app's one-frame hops (the default, exact): docs/TRAINING.md."""
    import torch

    from core.audio.io import load_audio

    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "Please call Stella and ask her to bring these "
                    "things with her from the store."], check=True)
    samples = load_audio(wav)
    audio = models[1]

    def features(hop: int) -> torch.Tensor:
        stream = audio.stream(hop_frames=hop)
        return torch.cat((stream.push(samples), stream.flush()))

    assert PreprocessConfig().audio_hop == 1  # the default is the app's features exactly
    live, chunked = features(1), features(25)
    assert live.shape == chunked.shape
    rel = float((chunked - live).norm() / live.norm())
    shift = float((live[1:] - live[:-1]).norm() / live.norm())
    print(f"relative L2, 25-frame hops vs the app's: {rel:.3f}; one frame apart: {shift:.3f}")
    assert 0 < rel < shift / 3  # measured 0.30 vs 1.13 at the 0.5 s / 35 ms defaults (0.125 at the former 3 s / 120 ms)
