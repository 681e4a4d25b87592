"""The causal streaming DiT: its masks hold (no future motion, no audio past f + L), any chunk size gives the same
frames, checkpoints record their kind, and the streaming source's latency is what its construction says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core import layout
from core.motion.checkpoint import MotionStats, load_motion_model, save_motion_model
from core.motion.dit import DiTConfig, MotionDiT
from core.motion.generator import DiTMotionSource, StreamingDiTMotionSource
from core.motion.models import build_dit
from core.motion.source import SAMPLES_PER_FRAME, MotionSettings, MotionSource
from core.motion.streaming_dit import StreamingMotionDiT

C = 10


def make_model(lookahead=2, guidance=True, frame_audio=False):
    torch.manual_seed(0)
    cfg = DiTConfig.small_streaming(audio_dim=16)
    cfg.lookahead, cfg.guidance_embed, cfg.frame_audio = lookahead, guidance, frame_audio
    m = build_dit(cfg).eval()
    with torch.no_grad():  # the output layer starts at zero for training; give it weights to see through
        m.out.weight.normal_(0, 0.1)
    return m


def inputs(k=4, lookahead=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, k, 70, generator=g), torch.tensor([7, 30]), torch.randn(2, C, 70, generator=g),
            torch.randn(2, C + k + lookahead, 16, generator=g))


@pytest.mark.parametrize("frame_audio", [False, True])
@pytest.mark.parametrize("lookahead", [0, 2, 4])
@torch.no_grad()
def test_frame_f_sees_no_motion_after_f_and_no_audio_after_f_plus_lookahead(lookahead, frame_audio):
    model = make_model(lookahead, frame_audio=frame_audio)
    assert isinstance(model, StreamingMotionDiT)
    x, t, ctx, audio = inputs(lookahead=lookahead)
    base = model(x, t, ctx, audio)
    for j in range(4):  # noisy frame j is window frame C + j
        later_motion = x.clone()
        later_motion[:, j + 1:] += 5.0
        out = model(later_motion, t, ctx, audio)
        assert torch.allclose(out[:, : j + 1], base[:, : j + 1], atol=1e-5)
        later_audio = audio.clone()
        later_audio[:, C + j + lookahead + 1:] += 5.0
        out = model(x, t, ctx, later_audio)
        assert torch.allclose(out[:, : j + 1], base[:, : j + 1], atol=1e-5)
        # ... while the audio it may read does change it
        own = audio.clone()
        own[:, C + j + lookahead] += 5.0
        assert not torch.allclose(model(x, t, ctx, own)[:, j], base[:, j], atol=1e-4)


@pytest.mark.parametrize("frame_audio", [False, True])
@torch.no_grad()
def test_any_chunk_size_gives_the_same_frames(frame_audio):
    model = make_model(frame_audio=frame_audio)
    x, t, ctx, audio = inputs(k=4)
    full = model(x, t, ctx, audio)
    for k in (1, 2, 3):
        part = model(x[:, :k], t, ctx, audio[:, : C + k + 2])
        assert torch.allclose(part, full[:, :k], atol=1e-5)


@torch.no_grad()
def test_guidance_scale_is_an_input_and_a_wrong_audio_length_is_refused():
    model = make_model()
    x, t, ctx, audio = inputs()
    one = model(x, t, ctx, audio, guidance=torch.ones(2))
    assert torch.allclose(one, model(x, t, ctx, audio), atol=1e-6)  # the default scale is 1
    with torch.no_grad():
        model.guide_mlp[2].weight.normal_(0, 0.1)
    assert not torch.allclose(model(x, t, ctx, audio, guidance=torch.full((2,), 3.0)), model(x, t, ctx, audio))
    with pytest.raises(ValueError, match="look-ahead"):
        model(x, t, ctx, audio[:, :-1])


def test_config_checks_and_kind_round_trip(tmp_path):
    for bad in ({"kind": "recurrent"}, {"lookahead": 5}, {"chunk": 0}, {"chunk": 5},
                {"kind": "windowed", "frame_audio": True}):
        with pytest.raises(ValueError):
            DiTConfig.from_dict({**DiTConfig.small_streaming(16).to_dict(), **bad})
    stats = MotionStats()
    streaming = make_model()
    path = save_motion_model(tmp_path / "s.safetensors", streaming, stats)
    loaded = load_motion_model(path)
    assert loaded.config.kind == "streaming" and isinstance(loaded.model, StreamingMotionDiT)
    x, t, ctx, audio = inputs()
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t, ctx, audio), streaming(x, t, ctx, audio))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["kind"] == "streaming"


def test_checkpoints_without_kind_load_as_windowed(tmp_path):
    """A file written before `kind` existed: its config has no kind, lookahead, chunk or guidance_embed."""
    from safetensors.torch import save_file

    model = MotionDiT(DiTConfig.small(audio_dim=16))
    old = {k: v for k, v in model.config.to_dict().items()
           if k not in ("kind", "lookahead", "chunk", "guidance_embed")}
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "headcast-motion-dit/1", "config": json.dumps(old),
                        "stats": json.dumps(MotionStats().to_dict()), "audio": "{}"})
    loaded = load_motion_model(path)
    assert loaded.config.kind == "windowed" and type(loaded.model) is MotionDiT


# ---------------------------------------------------------------- the streaming source

@pytest.fixture(scope="module")
def source():
    return DiTMotionSource.create(synthetic="tiny", settings=MotionSettings(stream_steps=2))


def run(src, audio, block=1280):
    src.reset(None)
    out = []
    for i in range(0, len(audio), block):
        src.push_audio(audio[i: i + block])
        out.append(src.pull())
    out.append(src.flush())
    return np.concatenate(out)


def test_default_stand_in_is_streaming_and_needs_at_most_120_ms_of_audio(source):
    assert isinstance(source, StreamingDiTMotionSource) and isinstance(source, MotionSource)
    cfg = source.mm.config
    assert cfg.kind == "streaming" and cfg.lookahead == 2 and cfg.chunk == 1
    # by construction: the feature stream's latency + L frames + the chunk's wait
    assert source.latency_ms() == pytest.approx(source._stream.latency_ms + (cfg.lookahead + cfg.chunk - 1) * 40)
    assert source.latency_ms() <= 120.0
    source.configure(MotionSettings(stream_steps=2, chunk=3))
    assert source.latency_ms() == pytest.approx(source._stream.latency_ms + 4 * 40)
    source.configure(MotionSettings(stream_steps=2))


def test_streaming_source_counts_determinism_and_causality(source, speech_16k):
    audio = speech_16k[: 2 * 16000 + 100].copy()
    a = run(source, audio)
    assert a.shape == (-(-len(audio) // SAMPLES_PER_FRAME), layout.MOTION_DIM)
    assert np.allclose(a, run(source, audio, block=777), atol=1e-5)  # independent of the block size
    # a frame is emitted (pulled) as soon as latency_ms of audio after its own samples has arrived
    source.reset(None)
    k = 30
    need = SAMPLES_PER_FRAME * (k + 1) + int(round(source.latency_ms() * 16))
    source.push_audio(audio[: need - 1])
    assert len(source.pull()) == k
    source.push_audio(audio[need - 1: need])
    assert len(source.pull()) == 1
    # and nothing after that audio changes it
    altered = audio.copy()
    altered[need:] = np.random.default_rng(0).normal(0, 0.3, len(audio) - need)
    b = run(source, altered)
    assert np.array_equal(a[: k + 1], b[: k + 1])
    assert not np.allclose(a[k + 1:], b[k + 1:])


def test_an_installed_streaming_checkpoint_is_what_dit_and_auto_use(tmp_path):
    """`python -m training install` puts a model in WEIGHTS/motion; `--motion dit` (and auto) then stream, and the
    engine's budget follows the source's latency (core/engine/engine.py `_budget_ms`)."""
    from core.audio.features import STAND_IN_MODEL, AudioFeatureExtractor
    from core.motion.checkpoint import installed_motion_model
    from core.motion.factory import make_motion_source

    dim = AudioFeatureExtractor.stand_in().dim
    model = build_dit(DiTConfig.small_streaming(audio_dim=dim))
    save_motion_model(installed_motion_model(tmp_path), model, MotionStats(),
                      audio={"model": STAND_IN_MODEL, "lookahead_ms": 37.5})
    for kind in ("dit", "auto"):
        src = make_motion_source(kind, weights_root=tmp_path)
        assert isinstance(src, StreamingDiTMotionSource)
        assert src.latency_ms() == pytest.approx(37.5 + 2.5 + 2 * 40)
