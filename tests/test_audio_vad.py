"""Voice activity on real speech, silence and low noise, for both detectors."""

from __future__ import annotations

import numpy as np
import pytest

from core.audio.vad import VoiceActivity, silero_model_path

KINDS = ["energy", pytest.param("silero", marks=pytest.mark.skipif(
    silero_model_path() is None, reason="silero-vad not installed (pip install --no-deps silero-vad)"))]


@pytest.mark.parametrize("kind", KINDS)
def test_speech_silence_and_noise(speech_16k, kind):
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.002, 16000 * 2).astype(np.float32)
    audio = np.concatenate([noise, speech_16k + rng.normal(0, 0.002, len(speech_16k)).astype(np.float32), noise])
    vad = VoiceActivity(kind)
    assert vad.kind == kind
    flags = np.concatenate([vad.push(audio[i : i + 300]) for i in range(0, len(audio), 300)])
    assert len(flags) == len(audio) // 640
    head, tail = 50, 50  # 2 s of noise on each side
    speech = flags[head:-tail]
    assert flags[5:head].mean() < 0.05 and flags[-tail + 10 :].mean() < 0.05
    assert speech.mean() > 0.6
    vad.reset()
    assert not vad.push(np.zeros(16000, np.float32)).any()


@pytest.mark.parametrize("kind", KINDS)
def test_causal_and_block_size_independent(speech_16k, kind):
    x = np.concatenate([np.zeros(8000, np.float32), speech_16k[:32000]])
    ref = VoiceActivity(kind).push(x)
    vad = VoiceActivity(kind)
    got = np.concatenate([vad.push(x[i : i + 77]) for i in range(0, len(x), 77)])
    assert np.array_equal(ref, got)
    # the decision for frames <= k does not depend on audio after frame k
    k = 30
    y = x.copy()
    y[640 * (k + 1) :] = 0
    assert np.array_equal(VoiceActivity(kind).push(y)[: k + 1], ref[: k + 1])


def test_auto_picks_what_is_installed():
    assert VoiceActivity().kind == ("silero" if silero_model_path() else "energy")
    with pytest.raises(ValueError, match="kind"):
        VoiceActivity("nope")
