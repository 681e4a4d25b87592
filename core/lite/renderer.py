"""The lite renderer: the full renderer's interface, frames from the per-portrait atlas instead of the networks.

Per frame (numpy + OpenCV on the host, into buffers made once per portrait; no frame-sized allocation):
  motion row -> (lip, eye) grid position + head similarity (core.lite.projection)
  -> crossfade of the 2 (4 during a blink) neighbouring atlas entries (cv2.addWeighted into a work buffer)
  -> the head similarity as one cv2.warpAffine of the face region (skipped when the head is still)
  -> the full renderer's paste-back formula, background*(1-mask) + face*mask (cv2.blendLinear), written straight
     into the output frame, whose pixels outside the face region already hold the portrait.
Measured on the 2-core development CPU: ~1-3 ms a frame (see `python -m core bench lite`).

Crossfade, not flow-guided interpolation, by measurement (`python -m core bench lite`, true full renders at the
midpoints between mouth levels, PSNR over the face region, stand-in networks with reacting lip MLPs): tiny size,
9x3 atlas, 8 midpoints: crossfade 54.6 dB at 0.41 ms per whole frame, flow-guided (OpenCV DIS flow between the
neighbours, precomputed; warp both halfway, then blend) 46.8 dB at 8.0 ms for the interpolation alone, nearest
level 45.2 dB; official size, 2x1 atlas: crossfade 19.2 dB, flow 14.4 dB, nearest 16.8 dB. Neighbouring levels are
close enough that blending beats warping, and optical flow fails where content appears (teeth, eyelids). The
stand-in faces are noise-like, so a real face may favour flow more; the benchmark prints the comparison.

Frames returned without `out` come from a pool of (B, H, W, 3) arrays per batch size that already hold the
portrait outside the face region; an array is reused only once nothing references it any more (CPython's
reference count: the engine's queue, a sink or the caller may hold frames as long as they like), so the pool
grows to what the consumer keeps alive during warm-up and then stops allocating.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from core import layout
from core.lite.atlas import Atlas, AtlasError, AtlasSpec, AtlasStore, Progress, atlas_key, build_atlas
from core.lite.projection import MotionProjection
from core.look import Look
from core.look_live import EASE_FRAMES, LookLayer
from core.motion.retarget_source import RetargetConfig
from core.render import PreparedPortrait, Renderer

log = logging.getLogger(__name__)



def _first_free(arrays: list[np.ndarray], free_refs: int) -> np.ndarray | None:
    """The first of `arrays` that nothing outside the pool references (no frame of it is queued, shown or kept
    anywhere: a view or a torch tensor of a frame holds the array too), else None."""
    for frames in arrays:
        if sys.getrefcount(frames) <= free_refs:
            return frames
    return None


def _free_refs() -> int:
    """sys.getrefcount of an array only the pool holds, measured through `_first_free` itself: the count depends
    on the interpreter (3.11: the list, the loop name and the argument = 3; 3.14 borrows stack references and
    reports fewer), and a count one too high would hand out a frame someone still shows."""
    refs = 0
    while _first_free([np.empty(0)], refs) is None:
        refs += 1
    return refs


FREE_REFS = _free_refs()


@dataclass(repr=False)
class LitePortrait:
    """The full renderer's PreparedPortrait (motion sources read its keypoints) + the atlas and the buffers the
    per-frame path writes into. Unknown attributes are read from `base`, so it stands in for a PreparedPortrait."""

    base: PreparedPortrait
    atlas: Atlas
    projection: MotionProjection
    background: np.ndarray  # (roi_h, roi_w, 3) uint8, the canvas under the face region
    mask: np.ndarray  # (roi_h, roi_w) float32 paste-back mask (the full renderer's)
    inv_mask: np.ndarray  # 1 - mask
    work: np.ndarray  # (3, roi_h, roi_w, 3) uint8 scratch: two crossfades and the warped face
    pool: dict[int, list[np.ndarray]] = field(default_factory=dict)  # batch size -> (B, H, W, 3) output arrays

    def __repr__(self) -> str:
        return f"LitePortrait(key={self.base.key[:12]}, atlas={self.atlas.key[:12]}, roi={self.base.roi})"

    # what the engine (key, image) and the motion sources (the pose, keypoints and landmarks) read: the full
    # renderer's PreparedPortrait fields, named one by one (core.engine.contracts.Portrait)
    key = property(lambda self: self.base.key)
    image = property(lambda self: self.base.image)
    face = property(lambda self: self.base.face)
    kp = property(lambda self: self.base.kp)
    exp = property(lambda self: self.base.exp)
    x_s = property(lambda self: self.base.x_s)
    scale = property(lambda self: self.base.scale)
    t = property(lambda self: self.base.t)
    angles = property(lambda self: self.base.angles)
    roi = property(lambda self: self.base.roi)
    size = property(lambda self: self.base.size)


class LiteRenderer:
    """Same interface as core.render.Renderer: `prepare(image) -> portrait`, `render(portrait, (B, 70)) ->
    (B, H, W, 3) uint8`. `full` renders the atlas (once per portrait, weights and settings; then read from the
    cache). `on_progress(done, total)` reports atlas building; `build=False` raises AtlasError instead of
    building a missing atlas."""

    kind = "lite"
    backend_name = "lite"  # frames come from the atlas, not from a network backend

    def __init__(self, full: Renderer, grid: AtlasSpec | None = None, store: AtlasStore | None = None,
                 retarget: RetargetConfig | None = None, on_progress: Progress | None = None, build: bool = True,
                 cache_size: int = 2) -> None:
        self.full = full
        self.grid = grid or AtlasSpec()
        self.store = store or AtlasStore()
        self.retarget = retarget or RetargetConfig()
        self.on_progress = on_progress
        self.build = build
        self._cache: OrderedDict[str, LitePortrait] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # the user's look: pose, zoom and motion gains fold into the rows (core/look_live.py, expression edits
        # left out: the atlas has no entry for them); eye / lip ratio move the atlas position (`_look_ratios`)
        self.look = LookLayer(expression=False)
        self._ratio_now: np.ndarray | None = None  # (mouth-open floor, eye-open factor) shown, eased per frame

    # the engine and the motion sources read these from any renderer
    @property
    def models(self):
        return self.full.models

    @property
    def spec(self):
        return self.full.spec

    @property
    def stitching(self) -> bool:
        return self.full.stitching

    # ------------------------------------------------------------------ portrait
    def atlas_key(self, base: PreparedPortrait) -> str:
        return atlas_key(self.full, base, self.grid, self.retarget)

    def has_atlas(self, image: np.ndarray | str | Path, face: int | None = None) -> bool:
        """Whether this portrait's atlas is already built (in memory or on disk)."""
        key = self.atlas_key(self.full.prepare(image, face=face))
        return key in self._cache or self.store.path(key).is_file()

    def prepare(self, image: np.ndarray | str | Path, source_name: str | None = None, face: int | None = None,
                on_progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> LitePortrait:
        """Prepare with the full renderer, then load the atlas or build it (minutes at official size on a CPU)."""
        with self._lock:  # one build at a time; a second caller for the same portrait waits and reuses it
            base = self.full.prepare(image, source_name, face=face)
            key = self.atlas_key(base)
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            atlas = self.store.load(key)
            if atlas is None:
                if not self.build:
                    raise AtlasError(f"no lite-mode atlas for this portrait yet ({self.store.path(key)}); build it "
                                     f"first (the app does this when lite mode is chosen, or run `python -m core "
                                     f"render --renderer lite ...` once)")
                log.info("building the lite-mode atlas (%d frames with the full renderer)", self.grid.entries)
                atlas = build_atlas(self.full, base, self.grid, self.retarget, on_progress or self.on_progress,
                                    cancel)
                self.store.save(atlas)
            portrait = self._attach(base, atlas)
            self._cache[key] = portrait
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return portrait

    def ready(self, image: np.ndarray | str | Path, face: int | None = None) -> bool:
        """Whether `prepare` is quick: the atlas is built already (else it takes minutes at official size)."""
        return self.has_atlas(image, face=face)

    def warm_up(self, portrait: LitePortrait, max_batch: int) -> None:
        """Nothing to capture: the frame pool grows to what the consumer holds during the first frames."""

    def _attach(self, base: PreparedPortrait, atlas: Atlas) -> LitePortrait:
        if tuple(atlas.roi) != tuple(base.roi):
            raise AtlasError(f"atlas {atlas.path} covers face region {atlas.roi}, the portrait has {base.roi}; "
                             f"delete the file to rebuild it")
        y0, y1, x0, x1 = base.roi
        mask = np.ascontiguousarray(base.mask[0, 0].detach().cpu().numpy(), np.float32)
        return LitePortrait(
            base=base, atlas=atlas, projection=MotionProjection(atlas, base),
            background=np.ascontiguousarray(base.image[y0:y1, x0:x1]), mask=mask,
            inv_mask=np.ascontiguousarray(1 - mask), work=np.empty((3, y1 - y0, x1 - x0, 3), np.uint8),
        )

    # ------------------------------------------------------------------ frames
    def _frames(self, portrait: LitePortrait, b: int, out) -> np.ndarray:
        """Where this batch goes: the caller's `out` (filled with the portrait), or a free pooled array."""
        if out is not None:
            frames = out.numpy() if isinstance(out, torch.Tensor) else out
            if frames.shape != (b, *portrait.image.shape) or frames.dtype != np.uint8:
                raise ValueError(f"out must be ({b}, {', '.join(map(str, portrait.image.shape))}) uint8, got "
                                 f"{tuple(frames.shape)} {frames.dtype}")
            for i in range(b):
                np.copyto(frames[i], portrait.image)
            return frames
        arrays = portrait.pool.setdefault(b, [])
        frames = _first_free(arrays, FREE_REFS)
        if frames is not None:
            return frames
        frames = np.repeat(portrait.image[None], b, axis=0)  # warm-up only: the pool grows to what is held
        arrays.append(frames)
        return frames

    def render(self, portrait: LitePortrait, motion: torch.Tensor | np.ndarray,
               out: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """Motion rows (B, 70 | 71) -> frames (B, H, W, 3) uint8 on the host."""
        if isinstance(motion, torch.Tensor):
            motion = motion.detach().cpu().numpy()
        if motion.ndim != 2 or motion.shape[1] not in layout.ROW_DIMS:
            raise ValueError(f"motion must be (B, {layout.MOTION_DIM}) rows, got {tuple(motion.shape)}")
        motion = layout.as_deltas(portrait.projection.exp, motion)  # absolute lips (JoyVASA) -> plain deltas
        motion = self.look.apply(portrait.base, torch.from_numpy(motion))[0].numpy()
        b = motion.shape[0]
        frames = self._frames(portrait, b, out)
        proj = portrait.projection
        lip_pos, eye_pos = self._look_ratios(proj, *proj.positions(motion))
        affines, moves = proj.affines(motion)
        y0, y1, x0, x1 = portrait.base.roi
        size = (x1 - x0, y1 - y0)
        for i in range(b):
            face = self._blend(portrait, float(lip_pos[i]), float(eye_pos[i]))
            if moves[i]:
                face = cv2.warpAffine(face, affines[i], size, dst=portrait.work[2], flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
            cv2.blendLinear(face, portrait.background, portrait.mask, portrait.inv_mask,
                            dst=frames[i, y0:y1, x0:x1])
        return frames

    def look_note(self, look: Look) -> str | None:
        """One sentence naming the controls of `look` lite mode cannot show, or None."""
        return look.lite_note()

    def _look_ratios(self, proj: MotionProjection, lip_pos: np.ndarray, eye_pos: np.ndarray):
        """The look's mouth-open ratio as a floor under the motion's mouth, its eye-open ratio as a factor on the
        motion's eye opening (blinks still close), both eased by at most 1/EASE_FRAMES of their range a frame."""
        look = self.look.look
        target = np.array((0.0 if look.lip_ratio is None else look.lip_ratio / proj.max_lip,
                           1.0 if look.eye_ratio is None else look.eye_ratio / proj.open_eye))
        if self._ratio_now is None and look.lip_ratio is None and look.eye_ratio is None:
            return lip_pos, eye_pos
        now = np.array((0.0, 1.0)) if self._ratio_now is None else self._ratio_now  # (0, 1): no effect
        steps = np.arange(1, len(lip_pos) + 1)[:, None] / EASE_FRAMES
        rows = now + np.clip(target - now, -steps, steps)
        self._ratio_now = rows[-1]
        if np.array_equal(self._ratio_now, target) and look.lip_ratio is None and look.eye_ratio is None:
            self._ratio_now = None
        lip_pos = np.maximum(lip_pos, np.clip(rows[:, 0], 0, 1) * proj.lip_steps)
        eye_pos = np.clip(eye_pos * rows[:, 1], 0, proj.eye_steps)
        return lip_pos, eye_pos

    @staticmethod
    def _blend(portrait: LitePortrait, lip: float, eye: float) -> np.ndarray:
        """The crossfade of the neighbouring atlas entries at a fractional grid position (an entry itself,
        without a copy, at a grid point)."""
        faces = portrait.atlas.faces
        e0, l0 = int(eye), int(lip)
        we, wl = eye - e0, lip - l0
        work = portrait.work

        def along_lip(e: int, dst: np.ndarray) -> np.ndarray:
            if wl == 0:
                return faces[e, l0]
            return cv2.addWeighted(faces[e, l0], 1 - wl, faces[e, l0 + 1], wl, 0, dst=dst)

        row = along_lip(e0, work[0])
        if we == 0:
            return row
        other = along_lip(e0 + 1, work[1])
        return cv2.addWeighted(row, 1 - we, other, we, 0, dst=work[0])
