"""The per-portrait atlas: frames the full renderer makes once, over the motion speech drives, for lite mode.

Why: one official LivePortrait frame costs ~623 GMAC (~7.5 s on the 2-core development CPU), yet during a call
the portrait is fixed and speech moves a few degrees of freedom. The atlas renders those once, on a grid of
lip-open ratio (mouth opening, through the lip retargeting MLP exactly as the `retarget` source does) x eye-open
ratio (blinks, through the eye MLP), with the head at rest. Head motion is added later as a 2D similarity.

Each entry is the generated face already resampled into the portrait's face region (ROI) with the full
renderer's own paste-back grid and rounded to uint8 once, so at a grid point the lite frame equals the full
frame to uint8 rounding (the mask blend is the same formula). The file also keeps the retarget source's lip /
eye expression curves, which the motion projection (core.lite.projection) inverts.

Storage: `<cache>/atlas/<key>.npz` (`HEADCAST_CACHE_DIR`, else the platform's user cache folder), written
through core.atomic; the key is a content hash of the portrait pixels, the face crop, the network weights, the
compute dtype, the grid and the retargeting settings, so a portrait already done is never rebuilt and any change
that would alter the frames makes a new file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core import layout
from core.atomic import atomic_path, set_aside
from core.lite import DEFAULT_GRID
from core.motion.retarget_source import RetargetConfig, RetargetMotionSource

log = logging.getLogger(__name__)

ATLAS_VERSION = 1  # bump when the file layout or the way entries are made changes
# the ranges of the retarget source's lookup tables (RetargetMotionSource.expression clamps to them)
LIP_RANGE, EYE_RANGE = 1.0, 0.5
Progress = Callable[[int, int], None]  # (entries done, entries in all)


def cache_dir() -> Path:
    """`HEADCAST_CACHE_DIR` if set (tests, portable installs), else the platform's user cache folder."""
    env = os.environ.get("HEADCAST_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs  # imported here: the GPU check's machine has no platformdirs and sets the variable

    return Path(platformdirs.user_cache_dir("headcast"))


class AtlasError(RuntimeError):
    """The atlas cannot be built or read; the message names the file and the fix."""


class AtlasCancelled(AtlasError):
    pass


@dataclass(frozen=True)
class AtlasSpec:
    """The grid. Defaults: 9 mouth levels x 3 eye levels = 27 full renders (~3.4 min at official size on an idle
    2-core CPU, seconds on a GPU). Chosen by measurement: 17 true renders of a mouth sweep (tiny stand-ins with
    reacting lip MLPs), the crossfade between grid levels vs the true in-between frames, PSNR over the face region:
    3 levels 43.1 dB (worst 36.5), 5 levels 51.3 dB (47.6), 9 levels 54.8 dB (51.1); snapping to the nearest
    of 9 levels instead gives 46.8 dB. 9 is where more levels stop paying for their build time. 3 eye levels
    (closed, half, open) cover a 100-150 ms blink, which lasts only 3-4 frames."""

    lip_levels: int = DEFAULT_GRID[0]
    eye_levels: int = DEFAULT_GRID[1]
    max_lip_ratio: float = RetargetConfig.max_lip_ratio  # mouth openings above this clamp to the top level
    open_eye_ratio: float = RetargetConfig.source_eye_ratio  # the retarget source's resting eye-open ratio

    def __post_init__(self) -> None:
        if self.lip_levels < 2 or self.eye_levels < 1:
            raise ValueError(f"atlas grid {self.lip_levels}x{self.eye_levels}: need >= 2 mouth and >= 1 eye levels")

    @classmethod
    def parse(cls, text: str) -> AtlasSpec:
        """'LIPxEYE', e.g. '9x3' (the default) or '2x1' (a quick benchmark atlas)."""
        try:
            lip, eye = (int(v) for v in text.lower().split("x"))
            return cls(lip_levels=lip, eye_levels=eye)
        except ValueError as exc:
            raise ValueError(f"atlas grid {text!r}: expected LIPxEYE such as 9x3 (>= 2 mouth, >= 1 eye levels)") \
                from exc

    @property
    def entries(self) -> int:
        return self.lip_levels * self.eye_levels

    def lip_grid(self) -> np.ndarray:
        return np.linspace(0, self.max_lip_ratio, self.lip_levels, dtype=np.float32)

    def eye_grid(self) -> np.ndarray:
        """Closed -> open; a single level is the open eye (no blinks in the atlas)."""
        if self.eye_levels == 1:
            return np.array([self.open_eye_ratio], np.float32)
        return np.linspace(0, self.open_eye_ratio, self.eye_levels, dtype=np.float32)

    def rows(self, source: RetargetMotionSource) -> np.ndarray:
        """Motion rows (eye_levels * lip_levels, 70), eye-major: what the retarget source emits at rest."""
        lip, eye = np.meshgrid(self.lip_grid(), self.eye_grid())
        rows = layout.neutral(self.entries)
        rows[:, layout.EXP] = source.expression(lip.reshape(-1), eye.reshape(-1))
        return rows


@dataclass
class Atlas:
    key: str
    spec: AtlasSpec
    faces: np.ndarray  # (eye_levels, lip_levels, roi_h, roi_w, 3) uint8, the face sampled into the canvas ROI
    roi: tuple[int, int, int, int]  # y0, y1, x0, x1 in the canvas
    lip_curve: np.ndarray  # (n, 63) retarget expression at lip ratio linspace(0, LIP_RANGE, n), eyes open
    eye_curve: np.ndarray  # (n, 63) retarget expression at eye ratio linspace(0, EYE_RANGE, n), mouth closed
    build_s: float  # seconds the full renderer took to make it
    path: Path | None = None

    @property
    def nbytes(self) -> int:
        return int(self.faces.nbytes)


# ---------------------------------------------------------------------------------------------------- keys
def models_digest(models) -> str:
    """Content hash of every network's parameters and buffers (~0.5 s for the official 130 M parameters);
    kept on the models object, which the renderer never changes after construction."""
    cached = getattr(models, "_headcast_digest", None)
    if cached is not None:
        return cached
    h = hashlib.blake2b(digest_size=16)
    for name in ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator",
                 "stitching", "lip", "eye"):
        for key, tensor in getattr(models, name).state_dict().items():
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    object.__setattr__(models, "_headcast_digest", digest)
    return digest


def atlas_key(renderer, portrait, spec: AtlasSpec, retarget: RetargetConfig) -> str:
    """Everything that changes the atlas frames: pixels, face crop, weights, dtype, stitching, grid, retarget."""
    face = portrait.face
    parts = {
        "version": ATLAS_VERSION,
        # the canvas pixels and the crop, not portrait.key: that also names how the face was chosen (None or 0
        # for the same largest face), which does not change a single atlas pixel
        "portrait": hashlib.sha1(np.ascontiguousarray(portrait.image).tobytes()).hexdigest(),
        "canvas": list(portrait.image.shape),
        "crop": hashlib.sha1(np.ascontiguousarray(face.matrix, np.float64).tobytes()).hexdigest(),
        "landmarks": None if face.landmarks is None else
        hashlib.sha1(np.ascontiguousarray(face.landmarks, np.float64).tobytes()).hexdigest(),
        "weights": models_digest(renderer.models),
        "dtype": str(renderer.spec.dtype),
        "stitching": bool(renderer.stitching),
        "grid": asdict(spec),
        "retarget": {k: v for k, v in asdict(retarget).items() if k in ("max_lip_ratio", "source_lip_ratio",
                                                                          "source_eye_ratio", "table_size")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------- build
@torch.inference_mode()
def build_atlas(renderer, portrait, spec: AtlasSpec, retarget: RetargetConfig | None = None,
                progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                batch: int = 1) -> Atlas:
    """Render every grid entry with the full renderer. `progress(done, total)` after each batch; `cancel()`
    returning True stops between batches with AtlasCancelled. Batch 1 on CPUs (progress per frame, same speed),
    the caller may pass more on GPUs."""
    retarget = retarget or RetargetConfig()
    source = RetargetMotionSource(renderer.models, config=retarget)
    source.reset(portrait)
    rows = torch.from_numpy(spec.rows(source)).to(renderer.spec.device)
    n = retarget.table_size
    lip_curve = source.expression(np.linspace(0, LIP_RANGE, n), np.full(n, spec.open_eye_ratio))
    eye_curve = source.expression(np.zeros(n), np.linspace(0, EYE_RANGE, n))
    y0, y1, x0, x1 = portrait.roi
    faces = np.empty((spec.entries, y1 - y0, x1 - x0, 3), np.uint8)
    t0 = time.perf_counter()
    if progress is not None:
        progress(0, spec.entries)
    for start in range(0, spec.entries, batch):
        if cancel is not None and cancel():
            raise AtlasCancelled("atlas build cancelled")
        motion = rows[start : start + batch]
        generated = renderer.render_faces(portrait, motion, look=False)  # the bare face: looks apply per frame
        # the full renderer's paste-back sampling (core.render.Renderer.composite), kept before the mask blend
        roi = F.grid_sample(generated.float(), portrait.grid.expand(len(motion), -1, -1, -1), mode="bilinear",
                            padding_mode="border", align_corners=False)
        roi = roi.mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        faces[start : start + len(motion)] = roi.cpu().numpy()
        if progress is not None:
            progress(min(start + batch, spec.entries), spec.entries)
    return Atlas(
        key=atlas_key(renderer, portrait, spec, retarget), spec=spec,
        faces=faces.reshape(spec.eye_levels, spec.lip_levels, *faces.shape[1:]), roi=portrait.roi,
        lip_curve=lip_curve, eye_curve=eye_curve,
        build_s=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------------------------------------- store
class AtlasStore:
    """Atlas files in `root/atlas/` (default: `cache_dir()`), one compressed .npz per key, written atomically."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, key: str) -> Path:
        return self.root / "atlas" / f"{key}.npz"

    def load(self, key: str) -> Atlas | None:
        """The stored atlas, or None when there is none. A damaged file is moved aside (`.bad`) with a warning
        and treated as missing, so the caller rebuilds it instead of failing."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("version") != ATLAS_VERSION or meta.get("key") != key:
                    raise ValueError(f"version/key {meta.get('version')}/{meta.get('key')} does not match")
                spec = AtlasSpec(**meta["spec"])
                atlas = Atlas(key=key, spec=spec, faces=z["faces"], roi=tuple(meta["roi"]),
                              lip_curve=z["lip_curve"], eye_curve=z["eye_curve"], build_s=float(meta["build_s"]),
                              path=path)
            y0, y1, x0, x1 = atlas.roi
            if atlas.faces.shape != (spec.eye_levels, spec.lip_levels, y1 - y0, x1 - x0, 3) \
                    or atlas.faces.dtype != np.uint8:
                raise ValueError(f"faces array {atlas.faces.shape} {atlas.faces.dtype} does not fit the grid")
            return atlas
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            bad = set_aside(path)
            if bad is None:
                log.warning("could not move the damaged atlas %s aside", path)
            log.warning("atlas file %s is damaged (%s); it was moved to %s and will be rebuilt", path, exc, bad)
            return None

    def save(self, atlas: Atlas) -> Path:
        path = self.path(atlas.key)
        meta = {"version": ATLAS_VERSION, "key": atlas.key, "spec": asdict(atlas.spec), "roi": list(atlas.roi),
                "build_s": atlas.build_s}
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), faces=atlas.faces,
                                    lip_curve=atlas.lip_curve, eye_curve=atlas.eye_curve)
        except OSError as exc:
            raise AtlasError(f"could not write the lite-mode atlas {path}: {exc}. Free disk space or point "
                             f"HEADCAST_CACHE_DIR at a writable folder.") from exc
        atlas.path = path
        return path
