"""Streaming JoyVASA for a live microphone: `JoyVASAMotionSource`.

Live use (`JoyVASAMotionSource` defaults): windows of N = 25 frames (MotionSettings.window), 10 strided ancestral
steps (MotionSettings.steps), guidance MotionSettings.cfg_scale, and 1 s of extra audio in front of each window
for HuBERT only. Why N = 25: latency is (N - 1) x 40 ms + compute; on this 2-core CPU a window costs ~0.38 s
(N = 10: 0.26 s for 0.4 s of audio, too little CPU left for the renderer; N = 50: 2 s of waiting). With the
pre-fix positional encoding the network has no notion of position, so a shorter window is not out of
distribution for it; each window still sees the previous 10 frames. `JoyVASAConfig.native()` is JoyVASA's own
setting (100 frames, 50 steps, guidance 2.8, no audio context) and reproduces its offline output exactly.

Frames: JoyVASA's wrapper generates over 1,280 zero samples + the audio + 640 zero samples, i.e. floor(L / 640)
frames, the first two of which belong to that leading silence. The stream drops those two on purpose, so row k
covers samples [640 k, 640 (k + 1)) of what the user pushed (the timebase contract every source keeps) and a
stream of n samples yields ceil(n / 640) rows (e.g. 244 where the wrapper has 246 for 155,600 samples); JoyVASA's
own video keeps them and so shows the mouth 80 ms after the sound. Where n is a multiple of 640, the wrapper's
extra last frame (its 640 trailing zeros) is not emitted either. The motion reference (the "first driving frame"
everything is relative to) is the wrapper's first frame, the silent one, exactly as JoyVASA's renderer takes it.

Rows: `JoyVASAConfig.absolute_lips` (default, JoyVASA's "all" region) emits 71-column rows whose lip keypoints
carry the generated absolute expression (see `core.layout`); False gives plain 70-column relative rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core import layout
from core.motion.diffusion import Noise, generator_noise
from core.motion.joyvasa.files import MotionTemplate
from core.motion.joyvasa.model import LEADING_SILENCE, JoyVASA, JoyVASAModel, load_joyvasa
from core.motion.joyvasa.postprocess import EMA_ALPHA, absolute_rows, postprocess, relative_rows
from core.motion.source import MotionSettings
from core.timebase import FRAME_MS, SAMPLES_PER_FRAME


@dataclass
class JoyVASAConfig:
    """Live defaults: 25-frame (1 s) windows, 10 strided sampling steps (MotionSettings.window / steps override);
    `native()` is JoyVASA's own: 100-frame windows, 50 steps, guidance 2.8, no audio context."""

    window: int | None = None  # None: settings.window
    steps: int | None = None  # None: settings.steps
    cfg_scale: float | None = None  # None: settings.cfg_scale
    audio_context_frames: int = 25  # extra audio in front of a window, for HuBERT only (left context)
    smooth: float | None = EMA_ALPHA
    absolute_lips: bool = True  # JoyVASA's "all" region: generated absolute expression on the lips (layout.py)

    @classmethod
    def native(cls) -> JoyVASAConfig:
        return cls(window=100, steps=50, cfg_scale=2.8, audio_context_frames=0)


@dataclass
class _Stream:
    samples: np.ndarray = field(default_factory=lambda: np.zeros(LEADING_SILENCE, np.float32))
    start: int = 0  # sample index (in the padded stream) of samples[0]
    window_start: int = 0  # padded-stream frame where the next window begins
    to_drop: int = LEADING_SILENCE // SAMPLES_PER_FRAME
    emitted: int = 0
    total_in: int = 0


class JoyVASAMotionSource:
    """Streaming JoyVASA: windows of N frames, each conditioned on the previous 10 generated frames."""

    name = "joyvasa"

    def __init__(self, joyvasa: JoyVASA, settings: MotionSettings | None = None,
                 config: JoyVASAConfig | None = None, device: str | torch.device = "cpu",
                 noise: Noise | None = None) -> None:
        self.jv = joyvasa
        self.model = joyvasa.model.to(device).eval()
        self.device = torch.device(device)
        self.settings = settings or MotionSettings()
        self.config = config or JoyVASAConfig()
        self._noise_override = noise
        self.last_window_ms = 0.0  # compute time of the latest window (one number: nothing grows with the stream)
        self.configure(self.settings)
        self.reset(None)

    @classmethod
    def create(cls, weights_root: str | Path | None = None, synthetic: str | None = None,
               settings: MotionSettings | None = None, device: str = "cpu",
               native: bool = False) -> JoyVASAMotionSource:
        """From the installed published files; a tiny random stand-in when `synthetic` is given and no JoyVASA
        files are installed (so installed stand-in checkpoints, e.g. the parity kit's, are used end to end).
        The positional encoding is `settings.joyvasa_encoding`, else the one recorded with the checkpoint."""
        from core.weights import WeightsRegistry

        config = JoyVASAConfig.native() if native else JoyVASAConfig()
        if synthetic is not None and not WeightsRegistry(weights_root).installed("joyvasa"):
            jv = JoyVASA(JoyVASAModel.synthetic(), MotionTemplate.synthetic())
        else:
            jv = load_joyvasa(WeightsRegistry(weights_root).root, device)
        return cls(jv, settings, config, device)

    # ------------------------------------------------------------------ settings
    @property
    def window(self) -> int:
        n = self.config.window or self.settings.window
        return int(min(max(n, 1), self.model.args.n_motions))

    @property
    def steps(self) -> int:
        return int(min(max(self.config.steps or self.settings.steps, 1), self.model.args.n_diff_steps))

    @property
    def cfg_scale(self) -> float:
        return float(self.config.cfg_scale if self.config.cfg_scale is not None else self.settings.cfg_scale)

    # ------------------------------------------------------------------ protocol
    def reset(self, portrait: object | None = None) -> None:
        a = self.model.args
        self._s = _Stream()
        gen = torch.Generator().manual_seed(self.settings.seed)
        self._noise = self._noise_override or generator_noise(gen)
        self._x_T = self._noise((1, a.n_motions, a.motion_feat_dim)).to(self.device)
        self._prev_motion = self.model.start_motion_feat.detach()
        self._prev_audio = self.model.start_audio_feat.detach()
        self._ema: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self.last_aux: dict[str, np.ndarray] = {}

    def use_models(self, models) -> None:
        """Nothing to take from the renderer: JoyVASA predicts the lips itself (MotionSource protocol)."""

    def bind_portrait(self, portrait) -> None:
        """Nothing per portrait: rows are relative to the stream's first frame (MotionSource protocol)."""

    def configure(self, settings: MotionSettings) -> None:
        """New settings apply from the next window on; the positional encoding too (same weights)."""
        self.settings = settings
        self.model.positional_encoding = settings.joyvasa_encoding or self.jv.default_encoding

    @property
    def positional_encoding(self) -> str:
        return self.model.positional_encoding

    def latency_ms(self) -> float:
        """A window's first frame waits for the other N - 1 frames; no audio beyond the window is used."""
        return (self.window - 1) * FRAME_MS

    def push_audio(self, samples: np.ndarray) -> None:
        if len(samples):
            x = np.asarray(samples, np.float32).reshape(-1)
            self._s.samples = np.concatenate((self._s.samples, x))
            self._s.total_in += len(x)

    def pull(self) -> np.ndarray:
        rows = []
        n = self.window
        while self._available_frames() >= n:
            rows.append(self._run_window(n))
        return self._finish(rows)

    def flush(self) -> np.ndarray:
        s = self._s
        wanted = -(-s.total_in // SAMPLES_PER_FRAME)  # frames the stream owes in all
        rows = []
        while s.emitted + sum(len(r) for r in rows) - s.to_drop < wanted:
            n = self.window
            short = n - self._available_frames()
            if short > 0:  # zero-pad the last window, as JoyVASA's wrapper does
                s.samples = np.concatenate((s.samples, np.zeros(short * SAMPLES_PER_FRAME, np.float32)))
            rows.append(self._run_window(n))
        before = s.emitted
        out = self._finish(rows)[: max(0, wanted - before)]
        s.emitted = before + len(out)
        return out

    # ------------------------------------------------------------------ internals
    def _available_frames(self) -> int:
        s = self._s
        return (s.start + len(s.samples)) // SAMPLES_PER_FRAME - s.window_start

    @torch.inference_mode()
    def _run_window(self, n: int) -> np.ndarray:
        t0 = time.perf_counter()
        s, a = self._s, self.model.args
        ctx = min(self.config.audio_context_frames, s.window_start)
        lo = (s.window_start - ctx) * SAMPLES_PER_FRAME - s.start
        hi = (s.window_start + n) * SAMPLES_PER_FRAME - s.start
        wave = torch.from_numpy(s.samples[lo:hi]).to(self.device)[None]
        audio = self.model.audio_features(wave)[:, ctx:]
        x_T = self._x_T[:, :n]
        motion = self.model.sample(audio, self._prev_motion, self._prev_audio, x_T, self._noise, self.cfg_scale,
                                   self.steps)
        c = a.n_prev_motions
        self._prev_motion = torch.cat((self._prev_motion, motion), 1)[:, -c:]
        self._prev_audio = torch.cat((self._prev_audio, audio), 1)[:, -c:]
        s.window_start += n
        keep_from = (s.window_start - self.config.audio_context_frames) * SAMPLES_PER_FRAME - s.start
        if keep_from > 0:
            s.samples = s.samples[keep_from:]
            s.start += keep_from
        post, self._ema = postprocess(motion[0].float().cpu().numpy(), self.jv.template, self.config.smooth,
                                      self._ema)
        rows = absolute_rows(post)
        if self._reference is None:
            self._reference = rows[0].copy()
        self.last_window_ms = (time.perf_counter() - t0) * 1000
        return relative_rows(rows, self._reference, self.config.absolute_lips)

    def _finish(self, windows: list[np.ndarray]) -> np.ndarray:
        if not windows:
            return np.zeros((0, layout.MOTION_DIM + self.config.absolute_lips), np.float32)
        rows = np.concatenate(windows)
        s = self._s
        drop = min(s.to_drop, len(rows))
        rows, s.to_drop = rows[drop:], s.to_drop - drop
        s.emitted += len(rows)
        return layout.apply_gains(rows, self.settings.expression_gain, self.settings.head_gain)
