"""Voice activity per 25 fps frame (frame k = samples [640 k, 640 (k + 1)) at 16 kHz), causally.

Two detectors behind one API:
- "silero": silero-vad's ONNX model, taken from inside its wheel and run with onnxruntime directly. The
  package's own wrapper imports torchaudio (a second torch build), so we only read its data file; install it
  with `pip install --no-deps silero-vad`. It tells speech from loud non-speech (music, typing) far better.
- "energy": an energy gate with an adaptive noise floor and a hangover. No model, microseconds per frame,
  always available; the fallback.
`kind="auto"` uses silero when its model file and onnxruntime are importable, else the gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME


def silero_model_path() -> Path | None:
    """The ONNX file shipped in the silero-vad wheel, or None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class _EnergyGate:
    def __init__(self, threshold_db: float, min_db: float) -> None:
        self.threshold_db = threshold_db  # speech: this far above the noise floor ...
        self.min_db = min_db  # ... and louder than this (dBFS)
        self.reset()

    def reset(self) -> None:
        self._floor_db = 0.0  # starts high: the first quiet frames pull it down at once

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        # first difference: a cheap pre-emphasis so rumble/hum counts less than voiced speech
        db = 10 * np.log10(np.mean(np.square(np.diff(frames, axis=1)), axis=1) * 4 + 1e-12)
        loud = np.zeros(len(frames), bool)
        for i, level in enumerate(db):
            # floor: drops at once to quieter frames, creeps up slowly (so speech does not raise it)
            self._floor_db = max(-80.0, level if level < self._floor_db else self._floor_db + 0.05)
            loud[i] = level > self.min_db and level > self._floor_db + self.threshold_db
        return loud


class _Silero:
    """silero-vad v5+/v6 ONNX: 512-sample chunks with the previous 64 samples prepended, recurrent state."""

    CHUNK, CONTEXT = 512, 64

    def __init__(self, model_path: Path, threshold: float, neg_threshold: float) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self.threshold, self.neg_threshold = threshold, neg_threshold
        self._sr = np.array(SAMPLE_RATE, np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._window = np.zeros((1, self.CONTEXT + self.CHUNK), np.float32)
        self._rest = np.zeros(0, np.float32)
        self._speaking = False
        self.last_prob = 0.0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        # one decision per frame: the hysteresis state after every chunk that ends inside or before the frame
        x = np.concatenate((self._rest, frames.reshape(-1)))
        out = np.zeros(len(frames), bool)
        pos = 0
        for i in range(len(frames)):
            end = (i + 1) * SAMPLES_PER_FRAME + len(self._rest)  # frame i's last sample, in x
            while pos + self.CHUNK <= end:
                self._window[0, : self.CONTEXT] = self._window[0, -self.CONTEXT :]
                self._window[0, self.CONTEXT :] = x[pos : pos + self.CHUNK]
                prob, self._state = self.session.run(
                    None, {"input": self._window, "state": self._state, "sr": self._sr})
                self.last_prob = float(prob.reshape(-1)[0])
                if self.last_prob >= self.threshold:
                    self._speaking = True
                elif self.last_prob < self.neg_threshold:
                    self._speaking = False
                pos += self.CHUNK
            out[i] = self._speaking
        self._rest = x[pos:].copy()
        return out


class VoiceActivity:
    """push(samples) -> one bool per 25 fps frame completed by those samples; causal; reset() starts over."""

    def __init__(self, kind: str = "auto", threshold_db: float = 9.0, min_db: float = -55.0,
                 hangover_frames: int = 8, threshold: float = 0.5, neg_threshold: float = 0.35) -> None:
        if kind not in ("auto", "silero", "energy"):
            raise ValueError(f"VoiceActivity kind must be 'auto', 'silero' or 'energy', not {kind!r}")
        self._detector: _EnergyGate | _Silero | None = None
        if kind in ("auto", "silero"):
            path = silero_model_path()
            try:
                if path is None:
                    raise ImportError("silero-vad is not installed")
                self._detector = _Silero(path, threshold, neg_threshold)
            except ImportError as exc:
                if kind == "silero":
                    raise RuntimeError(f"silero VAD unavailable ({exc}). Install it with "
                                       "`pip install --no-deps silero-vad` (and onnxruntime), "
                                       "or use kind='energy'.") from exc
        if self._detector is None:
            self._detector = _EnergyGate(threshold_db, min_db)
        self.kind = "silero" if isinstance(self._detector, _Silero) else "energy"
        self.hangover_frames = hangover_frames  # keep "speech" this long after the last voiced frame (gaps)
        self.reset()

    def reset(self) -> None:
        self._rest = np.zeros(0, np.float32)
        self._hang = 0
        self._detector.reset()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """-> one bool per frame completed by these samples (frame k = samples [640 k, 640 (k + 1)))."""
        x = np.concatenate((self._rest, np.asarray(samples, np.float32).reshape(-1)))
        n = len(x) // SAMPLES_PER_FRAME
        self._rest = x[n * SAMPLES_PER_FRAME :]
        if n == 0:
            return np.zeros(0, bool)
        voiced = self._detector(x[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME))
        out = np.empty(n, bool)
        for i, v in enumerate(voiced):
            self._hang = self.hangover_frames if v else max(0, self._hang - 1)
            out[i] = v or self._hang > 0
        return out
