"""Reading JoyVASA's published files safely: the motion-generator checkpoint and the motion template.

Files (HF repo jdh-algo/JoyVASA, under the weights root as `python -m core weights download joyvasa` puts them):
`JoyVASA/motion_generator/motion_generator_hubert_chinese.pt` (a pickle holding `argparse.Namespace` and
`pathlib.PosixPath`; read with `weights_only=True` and exactly those two classes allowed) and
`JoyVASA/motion_template/motion_template.pkl` (a plain pickle of NumPy arrays; read with an unpickler that allows
only NumPy's array reconstruction). Every refusal names the file, the problem and the command that fixes it.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import CheckpointError

CHECKPOINT_REL = "JoyVASA/motion_generator/motion_generator_hubert_chinese.pt"
TEMPLATE_REL = "JoyVASA/motion_template/motion_template.pkl"
FIX = ("Run `python -m core weights download joyvasa` (needs internet), or copy the files from a computer that has "
       "them and run `python -m core weights import DIR`.")


class JoyVASACheckpointError(CheckpointError, ValueError):
    """The JoyVASA checkpoint or template is not the published file (wrong, damaged, truncated or unsafe)."""


def refuse(path: Path, problem: str) -> JoyVASACheckpointError:
    return JoyVASACheckpointError(f"{path}: {problem}. {FIX}")


def read_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True; only argparse.Namespace and pathlib.PosixPath are allowed extra."""
    path = Path(path)
    if not path.is_file():
        from core.weights import MissingWeightsError

        raise MissingWeightsError(f"Missing JoyVASA checkpoint {path}. {FIX}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace, pathlib.PosixPath]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = found.group(1) if found else str(exc).strip().splitlines()[0]
        raise refuse(path, f"refused to unpickle {what}: the file may hold only tensors, an argparse.Namespace "
                            "and a pathlib.PosixPath (it is not the published checkpoint)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise refuse(path, f"not a readable PyTorch checkpoint, probably truncated or damaged ({exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "args" not in ckpt:
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise refuse(path, f"not a JoyVASA motion generator (expected a dict with 'args' and 'model', got {found})")
    if not isinstance(ckpt["args"], argparse.Namespace) or not isinstance(ckpt["model"], dict):
        raise refuse(path, "not a JoyVASA motion generator ('args' must be a Namespace, 'model' a state dict)")
    return ckpt


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts of NumPy arrays and refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a motion template")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # NumPy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


@dataclass
class MotionTemplate:
    """The statistics JoyVASA's 73-d motion vector was normalised with (only these are read at inference)."""

    mean_exp: np.ndarray
    std_exp: np.ndarray
    lo: np.ndarray  # (7,) minimum of scale, tx, ty, tz, pitch, yaw, roll
    hi: np.ndarray

    POSE_FIELDS = ("scale", "t", "pitch", "yaw", "roll")

    @classmethod
    def load(cls, path: str | Path) -> MotionTemplate:
        path = Path(path)
        if not path.is_file():
            from core.weights import MissingWeightsError

            raise MissingWeightsError(f"Missing JoyVASA motion template {path}. {FIX}")
        try:
            with open(path, "rb") as f:
                data = _NumpyOnlyUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise refuse(path, f"refused to unpickle the motion template ({exc})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise refuse(path, f"not a readable motion template, probably truncated ({exc})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict, path: str | Path = "motion template") -> MotionTemplate:
        def get(key: str, n: int) -> np.ndarray:
            v = data.get(key) if isinstance(data, dict) else None
            if not isinstance(v, np.ndarray) or v.shape != (n,):
                raise refuse(Path(path), f"motion template entry {key!r} missing or not of shape ({n},)")
            return v.astype(np.float32)

        sizes = {"scale": 1, "t": 3, "pitch": 1, "yaw": 1, "roll": 1}
        lo = np.concatenate([get(f"min_{k}", n) for k, n in sizes.items()])
        hi = np.concatenate([get(f"max_{k}", n) for k, n in sizes.items()])
        return cls(get("mean_exp", 63), get("std_exp", 63), lo, hi)

    @classmethod
    def synthetic(cls) -> MotionTemplate:
        """Plausible ranges for development without the published file."""
        return cls(np.zeros(63, np.float32), np.full(63, 0.01, np.float32),
                   np.array([0.85, -0.09, -0.11, -0.03, -24, -38, -19], np.float32),
                   np.array([1.55, 0.07, 0.05, 0.02, 21, 41, 23], np.float32))


def resolve_files(root: str | Path) -> tuple[Path, Path]:
    """The checkpoint and template under a weights root (or under the `JoyVASA` folder itself)."""
    root = Path(root)
    for base in (root, root.parent):
        ckpt, tpl = base / CHECKPOINT_REL, base / TEMPLATE_REL
        if ckpt.is_file() or tpl.is_file():
            return ckpt, tpl
    return root / CHECKPOINT_REL, root / TEMPLATE_REL
