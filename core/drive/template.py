"""Motion templates: a driving take saved in LivePortrait's own `.pkl` layout, and loaded back.

Layout (the official `make_motion_template`, commit 1986663b): a dict with `n_frames`, `output_fps`, `motion` (one
dict per frame: `scale` (1, 1), `R` (1, 3, 3), `exp` (1, 21, 3), `t` (1, 3), `kp` (1, 21, 3), `x_s` (1, 21, 3),
float32 arrays), `c_eyes_lst` ((1, 2) per frame) and `c_lip_lst` ((1, 1) per frame). The official pipeline reads
what Headcast writes and the other way round (older official keys `R_d`, `c_d_eyes_lst`, `c_d_lip_lst` are
accepted). Headcast adds one key the official code ignores, `present` (per-frame bool: the face was in view), so a
replay eases over missing faces exactly as driving with the video did.

Loading a pickle can run arbitrary code, so templates are read with a restricted unpickler that only rebuilds
numpy arrays, numpy scalars and plain containers (dict, list, tuple, str, numbers): a template from anywhere cannot
execute anything. Anything else is refused with a TemplateError.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path
from core.drive.motion import DrivingMotion
from core.drive.take import DrivingTake
from core.timebase import FPS

TEMPLATE_SUFFIX = ".pkl"
MOTION_KEYS = {"scale": (1, 1), "R": (1, 3, 3), "exp": (1, 21, 3), "t": (1, 3), "kp": (1, 21, 3), "x_s": (1, 21, 3)}
MAX_TEMPLATE_BYTES = 512 * 1024 * 1024  # ~4 days of motion at 25 fps; more is not a template
# (module, name) pairs a numpy array or scalar pickle refers to, in numpy 1.x and 2.x spelling
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "slice"),
}


class TemplateError(ValueError):
    """A template file that is not a LivePortrait motion template, or that asks to run code."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise TemplateError(f"refusing to load {module}.{name}: a motion template holds only arrays and numbers")


def save_template(take: DrivingTake, path: str | Path) -> Path:
    """Write `take` as an official motion template (atomically: a failed write leaves no half file)."""
    fields = vars(take.motion)  # the dataclass's tensors by name, not copied
    m = {k: fields[k].detach().cpu().numpy().astype(np.float32) for k in MOTION_KEYS}
    eyes = take.motion.c_eyes.detach().cpu().numpy().astype(np.float32)
    lips = take.motion.c_lip.detach().cpu().numpy().astype(np.float32)
    n = len(take)
    template = {
        "n_frames": n,
        "output_fps": int(take.fps),
        "motion": [{k: m[k][i : i + 1].copy() for k in MOTION_KEYS} for i in range(n)],
        "c_eyes_lst": [eyes[i : i + 1].copy() for i in range(n)],
        "c_lip_lst": [lips[i : i + 1].copy() for i in range(n)],
        "present": np.asarray(take.present, bool).copy(),
    }
    with atomic_path(path, suffix=TEMPLATE_SUFFIX) as tmp, open(tmp, "wb") as f:
        pickle.dump(template, f, protocol=4)
    return Path(path)


def _read(path: Path) -> dict:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TemplateError(f"cannot read motion template {path}: {exc.strerror or exc}") from exc
    if size > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"{path} is {size} bytes: too large for a motion template")
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes())).load()
    except TemplateError as exc:
        raise TemplateError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise TemplateError(f"{path} is not a LivePortrait motion template (cannot unpickle it: {exc})") from exc
    if not isinstance(obj, dict):
        raise TemplateError(f"{path} is not a LivePortrait motion template (expected a dict)")
    return obj


def _array(value, shape: tuple[int, ...], what: str, path: Path) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.size != int(np.prod(shape)):
        raise TemplateError(f"{path}: {what} should be {shape} numbers, got {a.dtype} {a.shape}")
    return a.astype(np.float32).reshape(shape)


def load_template(path: str | Path) -> DrivingTake:
    """Read a motion template (official or Headcast's) -> DrivingTake. Raises TemplateError naming the problem."""
    path = Path(path)
    t = _read(path)
    motion = t.get("motion")
    eyes = t.get("c_eyes_lst", t.get("c_d_eyes_lst"))
    lips = t.get("c_lip_lst", t.get("c_d_lip_lst"))
    if not isinstance(motion, list) or not motion or eyes is None or lips is None:
        raise TemplateError(f"{path} is not a LivePortrait motion template (needs motion, c_eyes_lst and c_lip_lst)")
    n = len(motion)
    if int(t.get("n_frames", n)) != n or len(eyes) != n or len(lips) != n:
        raise TemplateError(f"{path}: n_frames, motion, c_eyes_lst and c_lip_lst disagree on the frame count")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in MOTION_KEYS}
    for i, frame in enumerate(motion):
        if not isinstance(frame, dict):
            raise TemplateError(f"{path}: motion[{i}] is not a dict")
        for k, shape in MOTION_KEYS.items():
            value = frame.get(k, frame.get("R_d") if k == "R" else None)
            if value is None:
                raise TemplateError(f"{path}: motion[{i}] has no {k!r}")
            cols[k].append(_array(value, shape, f"motion[{i}][{k!r}]", path))
    c_eyes = np.concatenate([_array(e, (1, 2), f"c_eyes_lst[{i}]", path) for i, e in enumerate(eyes)])
    c_lip = np.concatenate([_array(c, (1, 1), f"c_lip_lst[{i}]", path) for i, c in enumerate(lips)])
    present = np.asarray(t.get("present", np.ones(n, bool)), bool).reshape(-1)
    if len(present) != n:
        present = np.ones(n, bool)
    m = DrivingMotion(**{k: torch.from_numpy(np.concatenate(v)) for k, v in cols.items()},
                      c_eyes=torch.from_numpy(c_eyes), c_lip=torch.from_numpy(c_lip))
    fps = int(t.get("output_fps", FPS))
    if fps < 1:
        raise TemplateError(f"{path}: output_fps {fps} is not a frame rate")
    if fps != FPS:  # an official template of a 30 fps video: each 25 fps frame shows the frame on screen then
        idx = np.arange((n * FPS) // fps or 1) * fps // FPS
        m, present = m[torch.from_numpy(idx)], present[idx]
    return DrivingTake(m, present, FPS)
