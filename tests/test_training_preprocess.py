"""preprocess: a real short talking video made with PyAV, bad inputs, resumable re-runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from training.data import load_clips
from training.preprocess import PreprocessConfig, PreprocessError, preprocess


def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, sr: int = 16000,
                fps: int = 30) -> None:
    """H.264 video (+ AAC audio when given) with PyAV."""
    import av

    with av.open(str(path), "w") as out:
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
    from core.audio.features import AudioFeatureExtractor
    from core.face import FaceCropper
    from core.liveportrait.config import LivePortraitConfig
    from core.liveportrait.loader import build_liveportrait

    lp = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    audio = AudioFeatureExtractor.from_config(AudioFeatureExtractor.small_config(), seed=0)
    return lp.motion_extractor, audio, FaceCropper()


@pytest.fixture(scope="module")
def talking_video(tmp_path_factory, astronaut) -> tuple[Path, float]:
    """2 s at 30 fps: the astronaut shifted a little each frame, with espeak-ng speech."""
    import cv2

    from core.audio.io import load_audio

    folder = tmp_path_factory.mktemp("videos")
    wav = folder / "say.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "Hello there, this is a test video."], check=True)
    speech = load_audio(wav)[: 2 * 16000]
    wav.unlink()
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(60):
        m = np.float32([[1, 0, 3 * np.sin(i / 5)], [0, 1, 2 * np.cos(i / 7)]])
        frames.append(cv2.warpAffine(small, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    write_video(folder / "talk.mp4", frames, speech)
    return folder, len(speech) / 16000


@pytest.mark.slow
def test_preprocess_video_and_bad_inputs(tmp_path, talking_video, models, astronaut):
    folder, seconds = talking_video
    out = tmp_path / "data"
    cfg = PreprocessConfig(min_frames=20, val_fraction=0.0)
    manifest = preprocess(folder, out, *models, cfg=cfg, progress=False)
    assert len(manifest["items"]) == 1 and not manifest["skipped"]
    clip = load_clips(out)[0]
    n = round(seconds * 25)
    assert abs(len(clip.motion) - n) <= 1  # 30 fps video resampled to 25 fps, cut to the audio
    assert clip.motion.shape[1] == 70 and clip.audio.shape == (len(clip.motion), models[1].dim)
    assert np.allclose(clip.motion[0], 0)  # relative to the first frame
    assert np.abs(clip.motion[1:]).max() > 0  # the face moved, the extractor saw it
    assert clip.envelope.max() > 0.01
    assert manifest["audio_config"]["lookahead_ms"] == models[1].config.lookahead_ms  # for the app's extractor

    # bad inputs next to the finished one: garbage .mp4, a video without audio, a too-short video
    (folder / "broken.mp4").write_bytes(b"\x00garbage" * 500)
    write_video(folder / "silent.mp4", [astronaut[::2, ::2].copy()] * 30, None)
    write_video(folder / "noface.mp4", [np.full((128, 128, 3), 90, np.uint8)] * 30, np.zeros(16000, np.float32))
    shard = out / (manifest["items"][0]["file"])
    before = shard.read_bytes()
    manifest = preprocess(folder, out, *models, cfg=cfg, progress=False)
    reasons = {Path(s["video"]).name: s["reason"] for s in manifest["skipped"]}
    assert "unreadable" in reasons["broken.mp4"]
    assert reasons["silent.mp4"] == "no audio track"
    assert reasons["noface.mp4"] == "no face in the first frame"
    assert len(manifest["items"]) == 1 and shard.read_bytes() == before  # finished video kept, not redone
    assert json.loads((out / "manifest.json").read_text())["items"] == manifest["items"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreprocessError, match="No videos"):
        preprocess(empty, out, *models, cfg=cfg, progress=False)
    assert shard.read_bytes() == before


@pytest.mark.slow
def test_model_trained_on_preprocessed_video_runs_in_the_app_source(tmp_path, talking_video, models):
    """preprocess -> train -> the exported file drives core.motion.generator.DiTMotionSource."""
    from core.motion.generator import DiTMotionSource
    from training.train import TrainConfig, train

    folder, _ = talking_video
    data = tmp_path / "data"
    preprocess(folder, data, *models, cfg=PreprocessConfig(min_frames=20, val_fraction=0.0), progress=False)
    train(TrainConfig(data=str(data), out=str(tmp_path / "run"), steps=2, batch_size=2, lengths=(10,), warmup=1,
                      threads=1, diffusion_steps=10, model=dict(layers=1, width=32, heads=2)))
    speech = tmp_path / "w2v"
    models[1].model.save_pretrained(speech)  # the test's small wav2vec2 stands in for the real one
    source = DiTMotionSource.create(tmp_path / "run" / "model.safetensors", speech_model=speech)
    source.reset()
    source.push_audio(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    rows = np.concatenate([source.pull(), source.flush()])
    assert rows.shape == (25, 70) and np.isfinite(rows).all()
