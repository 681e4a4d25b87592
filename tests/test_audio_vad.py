"""Voice activity on real speech, silence and low noise."""

from __future__ import annotations

import numpy as np

from core.audio.vad import VoiceActivity


def test_speech_silence_and_noise(speech_16k):
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.002, 16000 * 2).astype(np.float32)
    audio = np.concatenate([noise, speech_16k + rng.normal(0, 0.002, len(speech_16k)).astype(np.float32), noise])
    vad = VoiceActivity()
    flags = np.concatenate([vad.push(audio[i : i + 300]) for i in range(0, len(audio), 300)])
    assert len(flags) == len(audio) // 640
    head, tail = 50, 50  # 2 s of noise on each side
    speech = flags[head:-tail]
    assert flags[5:head].mean() < 0.05 and flags[-tail + 10 :].mean() < 0.05
    assert speech.mean() > 0.6
    vad.reset()
    assert not vad.push(np.zeros(16000, np.float32)).any()
