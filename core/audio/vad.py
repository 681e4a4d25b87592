"""Voice activity per 25 fps frame, causally: an energy gate with an adaptive noise floor and a hangover.

Why not a neural VAD: silero-vad's wheel pulls torchaudio (a second torch build); the gate is enough to decide
"speaking or not" for the avatar's idle state, runs in microseconds and never needs a download.
"""

from __future__ import annotations

import numpy as np

SAMPLES_PER_FRAME = 640


class VoiceActivity:
    def __init__(self, threshold_db: float = 9.0, min_db: float = -55.0, hangover_frames: int = 8) -> None:
        self.threshold_db = threshold_db  # speech: this far above the noise floor ...
        self.min_db = min_db  # ... and louder than this (dBFS)
        self.hangover_frames = hangover_frames  # keep "speech" this long after the last loud frame (gaps)
        self.reset()

    def reset(self) -> None:
        self._rest = np.zeros(0, np.float32)
        self._floor_db = 0.0  # starts high: the first quiet frames pull it down at once
        self._hang = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """-> one bool per frame completed by these samples (frame k = samples [640 k, 640 (k + 1)))."""
        x = np.concatenate((self._rest, np.asarray(samples, np.float32).reshape(-1)))
        n = len(x) // SAMPLES_PER_FRAME
        self._rest = x[n * SAMPLES_PER_FRAME :]
        out = np.zeros(n, bool)
        if n == 0:
            return out
        frames = x[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
        db = 10 * np.log10(np.mean(np.square(np.diff(frames, axis=1)), axis=1) * 4 + 1e-12)
        for i, level in enumerate(db):
            # floor: drops at once to quieter frames, creeps up slowly (so speech does not raise it)
            self._floor_db = max(-80.0, level if level < self._floor_db else self._floor_db + 0.05)
            loud = level > self.min_db and level > self._floor_db + self.threshold_db
            self._hang = self.hangover_frames if loud else max(0, self._hang - 1)
            out[i] = loud or self._hang > 0
        return out
