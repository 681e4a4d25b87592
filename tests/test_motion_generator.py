"""The streaming DiT motion source: frame counts, causality, determinism, idle state."""

from __future__ import annotations

import numpy as np
import pytest

from core import layout
from core.motion.generator import DiTMotionSource
from core.motion.source import SAMPLES_PER_FRAME, MotionSettings, MotionSource


@pytest.fixture(scope="module")
def source():
    return DiTMotionSource.create(synthetic="tiny", settings=MotionSettings(window=10, steps=4, cfg_scale=2.0),
                                  kind="windowed")


def run(src, audio, block=1280):
    src.reset(None)
    out, idle = [], []
    for i in range(0, len(audio), block):
        src.push_audio(audio[i : i + block])
        out.append(src.pull())
        idle.append(src.last_aux["idle_weight"])
    out.append(src.flush())
    idle.append(src.last_aux["idle_weight"])
    return np.concatenate(out), np.concatenate(idle)


def test_protocol_counts_and_determinism(source, speech_16k):
    assert isinstance(source, MotionSource)
    audio = speech_16k[: 2 * 16000 + 100]
    a, _ = run(source, audio)
    assert a.shape == (-(-len(audio) // SAMPLES_PER_FRAME), layout.MOTION_DIM)
    b, _ = run(source, audio, block=777)
    assert np.allclose(a, b, atol=1e-5)  # seeded, and independent of the block size
    assert source.latency_ms() == pytest.approx(9 * 40 + source._stream.latency_ms)


def test_causality(source, speech_16k):
    audio = speech_16k[: 3 * 16000].copy()
    k = 29  # the last frame of the third window (N = 10)
    cut = SAMPLES_PER_FRAME * (k + 1) + 40 + source._stream.lookahead
    altered = audio.copy()
    altered[cut:] = np.random.default_rng(0).normal(0, 0.3, len(audio) - cut)
    a, _ = run(source, audio)
    b, _ = run(source, altered)
    assert np.array_equal(a[: k + 1], b[: k + 1])
    assert not np.allclose(a[k + 1 :], b[k + 1 :])


def test_silence_is_idle_and_speech_leaves_it(source, speech_16k):
    silence = np.zeros(2 * 16000, np.float32)
    audio = np.concatenate([silence, speech_16k[: 3 * 16000], silence])
    motion, idle = run(source, audio)
    assert idle[:45].min() > 0.95  # silent start: idle
    assert idle[50 + 15 : 50 + 70].mean() < 0.3  # speaking: generated motion
    assert idle[-20:].min() > 0.9  # silence again: eased back
    # in idle the mouth is at rest: expression is only blinks (eye keypoints), no lip motion
    lips = motion[:45, layout.EXP].reshape(-1, 21, 3)[:, [19, 20]]
    assert np.abs(lips).max() < 0.02


def test_gains(speech_16k):
    s0 = DiTMotionSource.create(synthetic="tiny", settings=MotionSettings(window=10, steps=2, head_gain=0.0),
                                kind="windowed")
    motion, idle = run(s0, speech_16k[: 2 * 16000])
    speaking = idle < 0.05
    assert speaking.any()
    assert np.abs(motion[speaking][:, layout.POSE]).max() < 1.0  # only the idle sway remains


def test_reset_keeps_one_voice_activity_session(monkeypatch):
    """The engine resets the source on every shed; building a new VAD (an ONNX session) each time made a source
    that fell behind fall further behind (issue 23)."""
    import core.motion.generator as generator
    from core.motion.factory import make_motion_source

    built = []
    original = generator.VoiceActivity
    monkeypatch.setattr(generator, "VoiceActivity", lambda *a, **k: built.append(1) or original(*a, **k))
    source = make_motion_source("dit", synthetic="tiny")
    for _ in range(5):
        source.reset()
    assert len(built) == 1
