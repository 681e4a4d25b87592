"""The look on top of any motion, live: fold a `core.look.Look` into the motion rows and keypoints of every frame,
easing from one look to the next over a few frames.

Why in the renderer and on the rows: every motion source (retarget, DiT, JoyVASA) and offline `render` end in
the same 70-number rows (core/layout.py), so one place covers them all, and the engine, its pacing and its
counters are untouched: a look change costs no extra render, only a handful of additions per batch.

What a look does to a row (all linear in the look's values, so easing the values eases the picture):
* expression columns: x expression_motion, + the editor's expression edit (core.look.expression_offset);
* pose / translation / scale columns: x head_motion, + the look's pitch / yaw / roll; scale (1 + m) x mov_z;
* gaze lock: the motion's own horizontal eyeball wander (x of keypoints 11 and 15) is removed and the eyeballs
  turn against the head's motion (the editor's gaze_x / gaze_y per degree of yaw / pitch), so the eyes stay on
  the camera while the head moves; blinks (the lids, and y) are kept;
* eye / lip ratio: the retargeting MLPs' delta for this portrait (core.look.retarget_deltas), added to the
  driving keypoints before stitching, as the editor does.

Easing: a new look starts from wherever the previous transition had got to and reaches the target after
`ease_frames` frames along a smoothstep, so a slider dragged while live never jumps and never restarts.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from core import layout
from core.look import Look, SourceRatios, expression_offset, pose_offset, retarget_deltas

EASE_FRAMES = 8  # 0.32 s at 25 fps: quick enough to feel direct, slow enough to read as motion, not a cut
GAZE_UNITS_PER_DEGREE = 1.0  # editor gaze units that turn the eyeballs back by one degree of head motion
EYEBALL_KEYPOINTS = (11, 15)

# the look as one vector: what the easing interpolates
_EXP = slice(0, 63)
_POSE = slice(63, 66)
_MOV_Z, _HEAD, _EXPR, _GAZE = 66, 67, 68, 69
_SIZE = 70
# columns of the expression block that gaze lock touches: x of both eyeballs, and y (for pitch)
_EYE_X = [3 * k for k in EYEBALL_KEYPOINTS]
_EYE_Y = [3 * k + 1 for k in EYEBALL_KEYPOINTS]
# the editor's own eyeball movement per gaze unit (core.look's table): x for a positive / negative gaze_x, y
_GAZE_X_POS = [float(v) for v in expression_offset(Look(gaze_x=1.0))[list(EYEBALL_KEYPOINTS), 0]]
_GAZE_X_NEG = [float(-v) for v in expression_offset(Look(gaze_x=-1.0))[list(EYEBALL_KEYPOINTS), 0]]
_GAZE_Y = float(expression_offset(Look(gaze_y=1.0))[EYEBALL_KEYPOINTS[0], 1])


def look_vector(look: Look, expression: bool = True) -> np.ndarray:
    """The look as the vector the easing interpolates; expression=False leaves the editor's expression edits and
    the gaze lock out (a renderer that cannot show them: lite mode)."""
    v = np.zeros(_SIZE, np.float32)
    if expression:
        v[_EXP] = expression_offset(look).reshape(-1)
        v[_GAZE] = look.gaze_lock
    v[_POSE] = pose_offset(look)
    v[_MOV_Z], v[_HEAD], v[_EXPR] = look.mov_z, look.head_motion, look.expression_motion
    return v


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def apply_look_rows(rows: torch.Tensor, vec: torch.Tensor, gaze_lock: bool = True) -> torch.Tensor:
    """Rows (B, 70 | 71) and per-row look vectors (B, 70) | (1, 70) -> new rows with the look folded in.
    `gaze_lock`: whether any row has it on, decided by the caller on the host (asking the device would stall
    the GPU once per batch)."""
    out = rows.clone()
    expr, head = vec[:, _EXPR:_EXPR + 1], vec[:, _HEAD:_HEAD + 1]
    out[:, layout.EXP] = rows[:, layout.EXP] * expr + vec[:, _EXP]
    out[:, layout.POSE] = rows[:, layout.POSE] * head + vec[:, _POSE]
    out[:, layout.T] = rows[:, layout.T] * head
    out[:, layout.SCALE] = (1 + rows[:, layout.SCALE] * head[:, 0]) * vec[:, _MOV_Z] - 1
    if rows.shape[1] > layout.LIP_ABSOLUTE:
        out[:, layout.LIP_ABSOLUTE] = rows[:, layout.LIP_ABSOLUTE] * expr[:, 0]
    if gaze_lock:
        gaze = vec[:, _GAZE:_GAZE + 1]
        # the motion's own horizontal eyeball wander goes; the eyeballs turn against the head's motion by the
        # editor's own gaze movement per unit; the lids (blinks) are left alone
        motion_exp = rows[:, layout.EXP] * expr
        out[:, _EYE_X] -= gaze * motion_exp[:, _EYE_X]
        gx = -(rows[:, layout.YAW:layout.YAW + 1] * head) * GAZE_UNITS_PER_DEGREE * gaze
        gy = (rows[:, layout.PITCH:layout.PITCH + 1] * head) * GAZE_UNITS_PER_DEGREE * gaze
        pos = gx > 0
        for i, col in enumerate(_EYE_X):
            out[:, col:col + 1] += gx * torch.where(pos, _GAZE_X_POS[i], _GAZE_X_NEG[i])
        out[:, _EYE_Y] += gy * _GAZE_Y
    return out


class LookLayer:
    """One renderer's look: `set(look)` from any thread; `apply(portrait, rows)` on the render thread."""

    def __init__(self, eye_mlp: nn.Module | None = None, lip_mlp: nn.Module | None = None,
                 ease_frames: int = EASE_FRAMES, expression: bool = True) -> None:
        self.eye_mlp, self.lip_mlp = eye_mlp, lip_mlp
        self.expression = expression
        self.ease_frames = max(1, int(ease_frames))
        self._look = Look()
        self._request: tuple[Look, bool] | None = None  # (look, ease): taken by the render thread
        self._lock = threading.Lock()
        self._key: str | None = None  # the portrait the state below belongs to
        self._target = look_vector(Look())
        self._start = self._target.copy()
        self._done = self.ease_frames  # frames of the current transition already shown
        self._delta_target: torch.Tensor | None = None  # (1, 21, 3) eye + lip retargeting delta, or None
        self._delta_start: torch.Tensor | None = None
        self._vec_cache: dict[tuple, torch.Tensor] = {}
        self._neutral = True

    @property
    def look(self) -> Look:
        return self._look

    def set(self, look: Look, ease: bool = True) -> None:
        """The look from the next frame on: eased over `ease_frames` (live), or at once (a still preview, an
        offline render's first frame)."""
        with self._lock:
            self._look = look
            self._request = (look, ease)

    # ------------------------------------------------------------------ render thread
    def _retarget(self, portrait, look: Look) -> torch.Tensor | None:
        if (look.eye_ratio is None and look.lip_ratio is None) or self.eye_mlp is None:
            return None
        delta = retarget_deltas(self.eye_mlp, self.lip_mlp, portrait.x_s.float(), SourceRatios.of(portrait), look)
        return delta if bool(delta.any()) else None

    def _settle(self, portrait) -> None:
        """Take a pending look, or rebuild the state for another portrait (no easing across portraits)."""
        with self._lock:
            request, self._request = self._request, None
        new_portrait = portrait.key != self._key
        if request is None and not new_portrait:
            return
        look, ease = request if request is not None else (self._look, False)
        ease = ease and not new_portrait
        if ease:  # start from where the running transition is now
            w = float(_smoothstep(np.float32(min(1.0, self._done / self.ease_frames))))
            self._start = self._start + (self._target - self._start) * w
            self._delta_start = self._blend(self._delta_start, self._delta_target, w)
        target_delta = self._retarget(portrait, look)
        self._key = portrait.key
        self._target = look_vector(look, self.expression)
        self._delta_target = target_delta
        if ease:
            self._done = 0
        else:
            self._start, self._delta_start, self._done = self._target.copy(), target_delta, self.ease_frames
        self._vec_cache.clear()
        self._neutral = bool(np.array_equal(self._target, look_vector(Look()))) and target_delta is None

    @staticmethod
    def _blend(a: torch.Tensor | None, b: torch.Tensor | None, w: float) -> torch.Tensor | None:
        if a is None and b is None:
            return None
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        return a + (b - a) * w

    def apply(self, portrait, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows (B, 70 | 71) on the device -> (rows with the look, keypoint delta (B | 1, 21, 3) or None). A
        neutral, settled look returns the rows themselves: no cost when nobody uses the controls."""
        self._settle(portrait)
        n = self.ease_frames
        if self._done >= n:
            if self._neutral:
                return rows, None
            key = (rows.device, rows.dtype)
            vec = self._vec_cache.get(key)
            if vec is None:
                vec = self._vec_cache[key] = torch.from_numpy(self._target[None]).to(rows.device, rows.dtype)
            return apply_look_rows(rows, vec, bool(self._target[_GAZE] != 0)), self._delta_target
        b = rows.shape[0]
        w = _smoothstep(np.minimum(1.0, (self._done + 1 + np.arange(b, dtype=np.float32)) / n)).astype(np.float32)
        self._done = min(n, self._done + b)
        vec = self._start[None] + (self._target - self._start)[None] * w[:, None]
        delta = None
        if self._delta_start is not None or self._delta_target is not None:
            wt = torch.from_numpy(w).to(rows.device).reshape(b, 1, 1)
            a = self._delta_start if self._delta_start is not None else torch.zeros_like(self._delta_target)
            z = self._delta_target if self._delta_target is not None else torch.zeros_like(a)
            delta = a + (z - a) * wt
        gaze = bool((vec[:, _GAZE] != 0).any())
        return apply_look_rows(rows, torch.from_numpy(vec).to(rows.device, rows.dtype), gaze), delta
