"""Motion from LivePortrait's weights alone: speech energy opens the mouth, a blink process closes the eyes,
smooth noise moves the head. No motion model, ~zero compute, one frame (40 ms) of lookahead.

Why this exists: no trained speech-to-motion model ships with LivePortrait, yet a fresh install must animate at
once. LivePortrait's lip- and eye-retargeting MLPs map a target openness ratio to keypoint deltas for a given
face; we evaluate them once per portrait on a grid of ratios (a lookup table), so each frame is an interpolation.

Pipeline per 25 fps frame k (audio samples [640k, 640(k+1)) plus the next frame as lookahead):
  speech level (pre-emphasised RMS, dB) -> adaptive noise floor / peak -> openness in [0, 1] -> fast-attack /
  slower-release smoothing (causal) -> lip ratio = openness * max_lip_ratio * expression_gain (0 in silence).
Keypoint deltas become expression deltas by dividing by the portrait's scale (x = scale * (kp R + exp) + t).
The MLP inputs follow LivePortrait's usage: lip [x_s flat, source lip ratio, target], eye [x_s flat, source left,
source right, target]; the source ratios come from the portrait's 203 landmarks when the crop has them.

Fallback (no portrait bound, i.e. reset(None), or no MLPs): fixed expression offsets move the lip keypoints
(6, 12, 14, 17, 19, 20) and eyelid keypoints (11, 13, 15, 16, 18) vertically; approximate, but the face still
talks and blinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core import layout
from core.layout import EYE_KEYPOINTS, LIP_KEYPOINTS  # used only by the fallback without MLPs
from core.motion.source import MotionSettings
from core.timebase import FPS, FRAME_MS, SAMPLES_PER_FRAME


@dataclass
class RetargetConfig:
    lookahead_frames: int = 1
    max_lip_ratio: float = 0.55  # LivePortrait lip-open ratio of a wide-open mouth
    source_lip_ratio: float = 0.0  # the portrait's own lip ratio (unknown without landmarks: assume closed)
    source_eye_ratio: float = 0.35  # the portrait's own eye-open ratio
    blinks_per_minute: float = 17.0
    blink_ms: tuple[float, float] = (100.0, 150.0)
    min_blink_gap_s: float = 1.2
    head_deg_idle: float = 1.2  # amplitude of the head sway (degrees) in silence ...
    head_deg_speech: float = 4.0  # ... and at full speech energy
    silence_db: float = -50.0  # frames quieter than this (dBFS) are silence whatever the adaptive floor says
    floor_db_min: float = -70.0
    dynamic_range_db: float = 30.0  # openness goes from 0 to 1 over this range below the recent speech peak
    table_size: int = 65


def _distance_ratio(lmk: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    return float(np.linalg.norm(lmk[a] - lmk[b]) / (np.linalg.norm(lmk[c] - lmk[d]) + 1e-6))


def source_ratios(portrait, config: RetargetConfig) -> tuple[float, tuple[float, float]]:
    """The portrait's own lip-open and (left, right) eye-open ratios from LivePortrait's 203 landmarks, as its
    retargeting computes them; the configured defaults when the crop has no 203-point landmarks."""
    lmk = portrait.face.landmarks  # None: the crop came from a detector without the 203 points
    if lmk is None or len(lmk) != 203:
        return config.source_lip_ratio, (config.source_eye_ratio, config.source_eye_ratio)
    lmk = np.asarray(lmk, np.float64)
    lip = _distance_ratio(lmk, 90, 102, 48, 66)
    return lip, (_distance_ratio(lmk, 6, 18, 0, 12), _distance_ratio(lmk, 30, 42, 24, 36))


class RetargetMotionSource:
    name = "retarget"

    def __init__(self, models=None, settings: MotionSettings | None = None,
                 config: RetargetConfig | None = None, seed: int = 0) -> None:
        self.models = models
        self.config = config or RetargetConfig()
        self.settings = settings or MotionSettings()
        self.seed = seed
        self._lip_table: np.ndarray | None = None  # (table_size, 63) expression delta per lip ratio
        self._eye_table: np.ndarray | None = None
        self.reset(None)

    # ------------------------------------------------------------------ protocol
    def reset(self, portrait: object | None = None) -> None:
        self._buffer = np.zeros(0, np.float32)
        self._consumed = 0  # samples before the buffer start
        self._frame = 0
        self._prev_sample = 0.0
        self._floor_db, self._peak_db = -60.0, -20.0
        self._open = 0.0
        self._energy = 0.0
        self._rng = np.random.default_rng(self.seed)
        self._next_blink = self._draw_gap(first=True)
        self._blink_start, self._blink_len = -1.0, 0.0
        self._phases = self._rng.uniform(0, 2 * math.pi, (3, 3))
        self._freqs = self._rng.uniform(0.07, 0.45, (3, 3))
        # per frame of the last pull: lip / eye ratios, and the duration (s) of a blink starting there (else 0)
        self.last_aux: dict[str, np.ndarray] = {"lip_ratio": np.zeros(0, np.float32),
                                                 "eye_ratio": np.zeros(0, np.float32),
                                                 "blink_s": np.zeros(0, np.float32)}
        if portrait is not None:
            self._build_tables(portrait)
        else:
            self._build_fallback_tables()

    def use_models(self, models) -> None:
        """The engine hands over the renderer's LivePortrait models (for the lip / eye MLPs)."""
        self.models = models

    def bind_portrait(self, portrait) -> None:
        """A new portrait mid-stream: rebuild the lookup tables, keep the stream position and state."""
        self._build_tables(portrait)

    def configure(self, settings: MotionSettings) -> None:
        self.settings = settings

    def latency_ms(self) -> float:
        return self.config.lookahead_frames * FRAME_MS

    def push_audio(self, samples: np.ndarray) -> None:
        if len(samples):
            self._buffer = np.concatenate((self._buffer, np.asarray(samples, np.float32).reshape(-1)))

    def pull(self) -> np.ndarray:
        available = (self._consumed + len(self._buffer)) // SAMPLES_PER_FRAME - self.config.lookahead_frames
        return self._emit(max(0, available - self._frame))

    def flush(self) -> np.ndarray:
        total = self._consumed + len(self._buffer)
        n_frames = -(-total // SAMPLES_PER_FRAME)
        pad = (n_frames + self.config.lookahead_frames) * SAMPLES_PER_FRAME - total
        self._buffer = np.concatenate((self._buffer, np.zeros(pad, np.float32)))
        return self._emit(n_frames - self._frame)

    # ------------------------------------------------------------------ tables
    @torch.no_grad()
    def _build_tables(self, portrait) -> None:
        """Evaluate the lip / eye MLPs on a grid of target ratios for this portrait's source keypoints."""
        if self.models is None:
            self._build_fallback_tables()
            return
        cfg = self.config
        src_lip, src_eye = source_ratios(portrait, cfg)
        x_s = portrait.x_s.float()
        scale = float(portrait.scale.reshape(-1)[0])
        scale = scale if abs(scale) > 1e-6 else 1.0
        device = x_s.device
        n = cfg.table_size
        lip_r = torch.linspace(0, 1, n, device=device)
        lip_in = torch.stack((torch.full_like(lip_r, src_lip), lip_r), 1)
        lip_ref = torch.tensor([[src_lip, src_lip]], device=device)
        x = x_s.expand(n, -1, -1)
        lip = self.models.retarget_lip(x, lip_in) - self.models.retarget_lip(x_s, lip_ref)
        eye_r = torch.linspace(0, 0.5, n, device=device)
        left, right = src_eye
        eye_in = torch.stack((torch.full_like(eye_r, left), torch.full_like(eye_r, right), eye_r), 1)
        # reference: the eyes as they are in the portrait (delta 0 at the open, non-blinking state)
        eye_ref = torch.tensor([[left, right, cfg.source_eye_ratio]], device=device)
        eye = self.models.retarget_eye(x, eye_in) - self.models.retarget_eye(x_s, eye_ref)
        self._lip_table = (lip.reshape(n, -1) / scale).cpu().numpy().astype(np.float32)
        self._eye_table = (eye.reshape(n, -1) / scale).cpu().numpy().astype(np.float32)

    def _build_fallback_tables(self) -> None:
        """Without MLPs or a portrait: move the lip and eyelid keypoints vertically (approximate, documented)."""
        n = self.config.table_size
        lip = np.zeros((n, 21, 3), np.float32)
        eye = np.zeros((n, 21, 3), np.float32)
        r = np.linspace(0, 1, n, dtype=np.float32)
        for i in LIP_KEYPOINTS:
            lip[:, i, 1] = 0.06 * r * (1 if i in (19, 20) else 0.5)
        e = np.linspace(0, 0.5, n, dtype=np.float32)
        for i in EYE_KEYPOINTS:
            eye[:, i, 1] = 0.04 * (e - self.config.source_eye_ratio)
        self._lip_table, self._eye_table = lip.reshape(n, -1), eye.reshape(n, -1)

    @staticmethod
    def _lookup(table: np.ndarray, value: np.ndarray, hi: float) -> np.ndarray:
        pos = np.clip(value / hi, 0, 1) * (len(table) - 1)
        lo = np.floor(pos).astype(int)
        up = np.minimum(lo + 1, len(table) - 1)
        w = (pos - lo)[:, None].astype(np.float32)
        return table[lo] * (1 - w) + table[up] * w

    def expression(self, lip_ratio: np.ndarray, eye_ratio: np.ndarray) -> np.ndarray:
        """Expression columns (n, 63) for lip / eye ratios, exactly as emitted per frame (lite atlas, issue 11)."""
        lip, eye = np.asarray(lip_ratio, np.float32).reshape(-1), np.asarray(eye_ratio, np.float32).reshape(-1)
        return self._lookup(self._lip_table, lip, 1.0) + self._lookup(self._eye_table, eye, 0.5)

    # ------------------------------------------------------------------ per frame
    def _draw_gap(self, first: bool = False) -> float:
        mean = 60.0 / self.config.blinks_per_minute
        gap = self.config.min_blink_gap_s + self._rng.gamma(3.0, (mean - self.config.min_blink_gap_s) / 3.0)
        return gap * (self._rng.uniform(0.2, 1.0) if first else 1.0)

    def _level_db(self, frame: int) -> float:
        """Pre-emphasised RMS of frame k and its lookahead frames, in dBFS."""
        start = frame * SAMPLES_PER_FRAME - self._consumed
        x = self._buffer[start : start + SAMPLES_PER_FRAME * (1 + self.config.lookahead_frames)]
        hp = np.diff(x, prepend=self._prev_sample if start == 0 else self._buffer[start - 1]) if len(x) else x
        rms = float(np.sqrt(np.mean(np.square(hp)) + 1e-12)) * 2.0
        return 20 * math.log10(rms + 1e-9)

    def _emit(self, count: int) -> np.ndarray:
        cfg, s = self.config, self.settings
        motion = np.zeros((max(count, 0), layout.MOTION_DIM), np.float32)
        lip = np.zeros(len(motion), np.float32)
        eye = np.full(len(motion), cfg.source_eye_ratio, np.float32)
        blink = np.zeros(len(motion), np.float32)
        for i in range(len(motion)):
            k = self._frame
            t = k / FPS
            db = self._level_db(k)
            # adaptive floor (bounded below: digital silence must not stretch the scale) and a decaying peak
            self._floor_db = max(cfg.floor_db_min, db if db < self._floor_db else self._floor_db + 0.02)
            self._peak_db = max(db, self._peak_db - 0.05, self._floor_db + cfg.dynamic_range_db)
            speech = db > cfg.silence_db and db > self._floor_db + 8
            # openness: how close this frame is to the recent speech peak, over a fixed dynamic range
            target = 1 - (self._peak_db - db) / cfg.dynamic_range_db if speech else 0.0
            target = float(np.clip(target, 0, 1)) ** 0.7
            rate = 0.7 if target > self._open else 0.45  # fast attack, slightly slower release
            self._open += rate * (target - self._open)
            if not speech and self._open < 0.02:
                self._open = 0.0
            lip[i] = self._open * cfg.max_lip_ratio * s.expression_gain
            self._energy += 0.06 * (self._open - self._energy)
            # blinks: never one during another; duration 100-150 ms; eyes close along a half sine
            if self._blink_start < 0 and t >= self._next_blink:
                self._blink_start = t
                self._blink_len = self._rng.uniform(*cfg.blink_ms) / 1000
                blink[i] = self._blink_len
            if self._blink_start >= 0:
                phase = (t - self._blink_start) / self._blink_len
                if phase >= 1:
                    self._next_blink = t + self._draw_gap()
                    self._blink_start = -1.0
                else:
                    eye[i] = cfg.source_eye_ratio * (1 - math.sin(math.pi * phase))
            # head: sum of slow sinusoids, amplitude grows with recent speech energy
            amp = (cfg.head_deg_idle + (cfg.head_deg_speech - cfg.head_deg_idle) * self._energy) * s.head_gain
            wave_ = np.sin(2 * math.pi * self._freqs * t + self._phases).sum(axis=1) / 3
            motion[i, layout.POSE] = amp * wave_
            self._frame += 1
        if len(motion):
            motion[:, layout.EXP] = self.expression(lip, eye)
        self.last_aux = {"lip_ratio": lip, "eye_ratio": eye, "blink_s": blink}
        # drop audio no longer needed (keep one sample for the pre-emphasis of the next frame)
        keep_from = self._frame * SAMPLES_PER_FRAME - self._consumed
        if keep_from > 1:
            self._prev_sample = float(self._buffer[keep_from - 1])
            self._buffer = self._buffer[keep_from:]
            self._consumed += keep_from
        return motion
