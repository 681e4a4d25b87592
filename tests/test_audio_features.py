"""wav2vec2 features at exactly 25 fps: frame counts, streaming vs offline, causality, no drift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.audio.features import STREAM_TOLERANCE, AudioFeatureConfig, AudioFeatureExtractor, measure_hop_ms


@pytest.fixture(scope="module")
def extractor():
    """Small random wav2vec2 with per-frame layer norm (a streamable front end, see the module docstring)."""
    cfg = AudioFeatureExtractor.small_config()
    cfg.feat_extract_norm, cfg.do_stable_layer_norm = "layer", True
    return AudioFeatureExtractor.from_config(cfg, AudioFeatureConfig(left_context_s=1.0), seed=0)


def stream_all(stream, x, blocks):
    out, i = [], 0
    for b in blocks:
        out.append(stream.push(x[i : i + b]))
        i += b
    out.append(stream.push(x[i:]))
    out.append(stream.flush())
    return torch.cat(out)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 3.77, 7.77])
def test_exact_frame_counts(extractor, seconds):
    n = int(round(seconds * 16000))
    x = np.random.default_rng(1).normal(0, 0.1, n).astype(np.float32)
    expected = -(-n // 640)
    assert extractor.offline(x).shape == (expected, extractor.dim)
    blocks = np.random.default_rng(2).integers(1, 3000, 200)
    assert stream_all(extractor.stream(), x, blocks[np.cumsum(blocks) < n]).shape[0] == expected
    if float(seconds).is_integer():
        assert expected == 25 * seconds


def test_streaming_matches_offline(extractor, speech_16k):
    x = speech_16k[: 4 * 16000]
    offline = extractor.offline(x)
    streamed = stream_all(extractor.stream(), x, [320] * (len(x) // 320))
    rel = float((streamed - offline).norm() / offline.norm())
    assert rel < STREAM_TOLERANCE, rel
    # more lookahead -> closer to offline (the error falls as the context grows)
    wide = stream_all(extractor.stream(lookahead_ms=400), x, [320] * (len(x) // 320))
    assert float((wide - offline).norm() / offline.norm()) < rel / 2


@pytest.mark.parametrize("blocks", [[640] * 50, [37, 5000, 123] * 10])
def test_causality_whatever_the_block_sizes(extractor, speech_16k, blocks):
    x = speech_16k[: 2 * 16000].copy()
    stream = extractor.stream()
    k = 40
    cut = 640 * (k + 1) + 40 + stream.lookahead  # hop_frames = 1: the stated per-frame bound
    y = x.copy()
    y[cut:] = np.random.default_rng(0).normal(0, 0.3, len(x) - cut)
    a = stream_all(extractor.stream(), x, blocks)
    b = stream_all(extractor.stream(), y, blocks)
    assert torch.equal(a[: k + 1], b[: k + 1])
    assert not torch.allclose(a[k + 1 :], b[k + 1 :])
    # frames are a function of the audio alone, not of how it was cut into blocks
    assert torch.allclose(a, stream_all(extractor.stream(), x, [640] * 50), atol=1e-5)


@pytest.mark.slow
def test_ten_minutes_without_drift():
    """10 min in 20 ms blocks: exactly 15000 frames, each emitted as soon as its samples (+lookahead) are in."""
    cfg = AudioFeatureExtractor.small_config(hidden=32, layers=1)
    ex = AudioFeatureExtractor.from_config(cfg, AudioFeatureConfig(left_context_s=0.2, hop_frames=25))
    stream = ex.stream(lookahead_ms=80)
    rng = np.random.default_rng(0)
    total = 0
    for _ in range(10 * 60 * 50):
        total += len(stream.push(rng.normal(0, 0.05, 320).astype(np.float32)))
        ready = max(0, (stream.samples_in - 40 - stream.lookahead) // 640)
        assert total == stream.frames_emitted and 0 <= ready - total < 25  # never behind by a whole hop
    total += len(stream.flush())
    assert total == 15000 and stream.samples_in == 15000 * 640


def test_hop_timing_helper(extractor, monkeypatch):
    calls = []
    encode = extractor.encode_padded
    monkeypatch.setattr(extractor, "encode_padded", lambda x: calls.append(len(x)) or encode(x))
    assert measure_hop_ms(extractor, hop_ms=80, n=3) > 0
    # each timed push is one encode of context (1 s = 25 frames) + 2 new frames + lookahead, as a live hop
    assert calls[-3:] == [640 * (25 + 2 + 3) + 80] * 3


def test_missing_model_names_the_fix(tmp_path):
    from core.audio.features import FeatureModelError

    with pytest.raises(FeatureModelError, match=r"no-such-model.*weights download"):
        AudioFeatureExtractor.from_pretrained(tmp_path / "no-such-model")
