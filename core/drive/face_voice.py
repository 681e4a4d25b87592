"""Face + voice live: a motion source whose rows are speech rows with head, eyes and expression from the live face.

It wraps any motion source (the speech) and reads the driving feed (core/drive/feed.py): each row it returns takes
the newest driving sample, so rows follow the face at the output rate whatever the camera's rate, with no backlog.
Per row: a sample that shows a face and would still be on screen within the latency budget (`budget_s`) is used:
its age now plus the time rows have lately taken from here to the screen (`delay_s`, learnt from the frames
emitted: it rises at once and decays slowly) must not exceed the budget, as the engine sheds late audio; an older
sample counts as no face. It is then its motion is extracted once (on the worker, which owns the device), turned into
relative rows (core/drive/rows.py: relative to the first face of the current driving window) and mixed over the
speech by `Presence` (core/drive/take.py) with core/drive/mix.py's per-part split. Without a usable face the last
face row holds for a moment and then eases to speech and idle motion; when the face comes back it eases in again,
so the mixed motion never jumps. Once the face has been gone long enough that it no longer shows, the tracker
is asked for a new window for the next face (which becomes the new reference, at rest: no jump either).

For the camera-to-frame latency, each row's driving capture time is kept by output frame number
(`emitted(index, emit_time)`, from the latency sink, also feeds `delay_s`); the engine numbers frames
`frame_base + row` (its `frame_base` moves when stale audio is shed, and the source is then reset), so the owner
sets `frame_base` to the engine's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from core import layout
from core.drive.config import DriveConfig
from core.drive.feed import DrivingFeed, DrivingSample
from core.drive.mix import Split, mix_rows
from core.drive.motion import DrivingMotion, extract_motion
from core.drive.rows import motion_rows
from core.drive.smooth import OneEuro, Smoothing
from core.drive.take import EASE_FRAMES, HOLD_FRAMES, Presence
from core.geometry import rotation_matrix
from core.motion.source import MotionSettings, MotionSource

TIME_RING = 1024  # output frames whose driving capture time is kept (40 s at 25 fps: far more than any queue)
DELAY_DECAY_S = 0.002  # per emitted frame: the learnt row-to-screen time falls 50 ms a second after a spike
NO_ROWS = np.zeros((0, layout.MOTION_DIM), np.float32)
MIN_AGE_S = 1.0 / 25  # a sample this fresh is used even when rows take the whole budget to reach the screen


class FaceVoiceSource:
    """A MotionSource: `speech`'s rows, the face's parts from `feed` (see the module docstring)."""

    def __init__(self, speech: MotionSource, feed: DrivingFeed, budget_s: float,
                 reanchor: Callable[[], None] | None = None, config: DriveConfig | None = None,
                 split: Split | None = None, smoothing: Smoothing | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 hold: int = HOLD_FRAMES, ease: int = EASE_FRAMES) -> None:
        self.speech, self.feed = speech, feed
        self.name = f"{speech.name} + face"
        self.budget_s = budget_s
        self.delay_s = 0.0  # how long rows lately took from this source to the screen (see `emitted`)
        self.config, self.split = config or DriveConfig(), split or Split()
        self.smoother = OneEuro(smoothing) if smoothing is not None else None  # a webcam's jitter (smooth.py)
        self._reanchor, self._clock = reanchor, clock
        self.presence = Presence(hold, ease, level=0.0)  # the avatar starts on speech and eases onto the face
        self.frame_base: Callable[[], int] = lambda: 0
        self._extractor: torch.nn.Module | None = None
        self._device: torch.device = torch.device("cpu")
        self._portrait = None
        self._first: DrivingMotion | None = None  # the reference frame of the current driving window
        self._anchor = 0
        self._seq = -1  # the sample whose motion `_face` holds
        self._stale_seq = -1  # the last sample found too old
        self._motion: DrivingMotion | None = None
        self._face = np.zeros(layout.MOTION_DIM, np.float32)  # the face row shown while the face is away
        self._asked_anchor = False
        self._base: int | None = None
        self._row = 0
        self._keys = np.full(TIME_RING, -1, np.int64)
        self._times = np.full(TIME_RING, math.nan)
        self._pulled = np.full(TIME_RING, math.nan)
        self.rows_with_face = self.rows_without_face = self.stale_samples = 0

    # ---- the MotionSource protocol: speech calls go through -----------------------------------------
    @property
    def last_aux(self) -> dict[str, np.ndarray]:
        return self.speech.last_aux

    def use_models(self, models: object) -> None:
        self.speech.use_models(models)
        self._extractor = models.motion_extractor
        self._device = next(self._extractor.parameters()).device

    def bind_portrait(self, portrait: object) -> None:
        self.speech.bind_portrait(portrait)
        self._bind(portrait)

    def reset(self, portrait: object | None = None) -> None:
        """The speech stream restarts (a start, or stale audio shed); the face state carries on (no jump)."""
        self.speech.reset(portrait)
        if portrait is not None:
            self._bind(portrait)
        self._base, self._row = None, 0

    def configure(self, settings: MotionSettings) -> None:
        self.speech.configure(settings)

    def push_audio(self, samples: np.ndarray) -> None:
        self.speech.push_audio(samples)

    def pull(self) -> np.ndarray:
        return self._mix(self.speech.pull())

    def flush(self) -> np.ndarray:
        return self._mix(self.speech.flush())

    def latency_ms(self) -> float:
        return self.speech.latency_ms()

    # ---- the face ------------------------------------------------------------------------------------
    def emitted(self, index: int, emit_time: float) -> float | None:
        """Output frame `index` reached the screen at `emit_time` (pacer thread): learn the row-to-screen time;
        returns the capture time of the driving frame it showed (None: no fresh face, or not a row of ours)."""
        slot = index % TIME_RING
        if self._keys[slot] != index:
            return None
        self.delay_s = max(emit_time - float(self._pulled[slot]), self.delay_s - DELAY_DECAY_S)
        return self.drive_time(index)

    def drive_time(self, index: int) -> float | None:
        """Capture time of the driving frame output frame `index` used; None: it showed no fresh face."""
        slot = index % TIME_RING
        if self._keys[slot] != index or math.isnan(self._times[slot]):
            return None
        return float(self._times[slot])

    @property
    def state(self) -> str:
        """A few words for status lines."""
        if self.feed.gone:
            return "face driving on, source gone: speech only"
        return f"face driving on ({'face seen' if self.presence.gone == 0 and self.presence.level > 0 else 'no face'})"

    def _bind(self, portrait) -> None:
        a = portrait.angles.float()
        self._portrait = (rotation_matrix(a[:, 0], a[:, 1], a[:, 2]), a,
                          portrait.exp.detach().float().cpu().numpy().reshape(layout.N_KEYPOINTS, 3))
        self._seq = -1  # the next sample's row is made for this portrait

    def _usable(self, now: float) -> DrivingSample | None:
        sample = None if self.feed.gone else self.feed.latest()
        if sample is None or sample.crop is None:
            return None
        if now - sample.capture_time + min(self.delay_s, self.budget_s - MIN_AGE_S) > self.budget_s:  # too late
            self.stale_samples += sample.seq != self._stale_seq  # each driving frame counted once
            self._stale_seq = sample.seq
            return None
        return sample

    @torch.inference_mode()
    def _face_row(self, sample: DrivingSample) -> None:
        if sample.seq == self._seq:
            return
        self._seq = sample.seq
        motion = extract_motion(self._extractor, sample.crop[None], [None], device=self._device)  # no ratios: rows
        if sample.anchor != self._anchor or self._first is None:
            self._anchor, self._first = sample.anchor, motion  # a new window: its first face is the rest pose
            if self.smoother is not None:
                self.smoother.reset()
        rot, angles, _ = self._portrait
        row = motion_rows(motion, self._first, rot.to(self._device), angles.to(self._device), self.config)[0].cpu()
        self._face[:] = row.numpy() if self.smoother is None else self.smoother(row.numpy(), sample.capture_time)

    def _mix(self, voice: np.ndarray) -> np.ndarray:
        n = len(voice)
        if n == 0:  # always 70 wide: the engine joins a pull and a flush, and mixed rows are plain deltas
            return NO_ROWS
        if self._portrait is None:
            return voice
        if self._base is None:
            self._base = int(self.frame_base())
        face = np.empty((n, layout.MOTION_DIM), np.float32)
        weights = np.empty(n, np.float32)
        now = self._clock()
        for i in range(n):
            sample = self._usable(now)
            if sample is not None:
                self._face_row(sample)
                self._asked_anchor = False
            weights[i] = self.presence.step(sample is not None)
            face[i] = self._face
            index = self._base + self._row
            self._keys[index % TIME_RING] = index
            self._times[index % TIME_RING] = sample.capture_time if sample is not None else math.nan
            self._pulled[index % TIME_RING] = now
            self._row += 1
            self.rows_with_face += sample is not None
            self.rows_without_face += sample is None
            if self.presence.level == 0.0 and not self._asked_anchor and self._reanchor is not None:
                self._asked_anchor = True  # gone long enough to be invisible: the next face gets a window
                self._reanchor()
        return mix_rows(face, voice, weights, self.split, source_exp=self._portrait[2])
