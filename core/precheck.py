"""What `render` and `live` check before any network weights load: the files the run needs are installed and
the photo has the face asked for.

Why: loading the networks takes seconds to minutes on a CPU (issue 21 measured 17.5 s before "no face in the
photo" and 46.7 s before "JoyVASA files missing"). Both checks need no network and no torch, so they come first
and a mistake is named within a second or two. The face found here is the face the renderer crops later (the
same `FaceCropper` choice as `core.pipeline.build_pipeline`), so the answer cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.face import FaceCrop, FaceCropper, load_image
from core.weights import MODELS, MissingWeightsError, WeightsRegistry, fix_command


def needed_models(weights: str, motion: str, weights_root: str | Path | None = None) -> list[str]:
    """The weight families a run with these options loads ('synthetic-*' weights load none of LivePortrait's,
    and JoyVASA only when it is installed, else its stand-in)."""
    if weights.startswith("synthetic"):
        return []
    return ["liveportrait"] + (["joyvasa"] if motion == "joyvasa" else [])


def check_files(weights: str, motion: str, weights_root: str | Path | None = None) -> None:
    """Raise MissingWeightsError naming every missing or damaged file of the run's models and both fixes
    (download, or import from a folder for a machine without internet)."""
    registry = WeightsRegistry(weights_root)
    rows, families = [], []
    for model in needed_models(weights, motion, weights_root):
        states = [registry.check(f)[0] for f in MODELS[model].files]
        if all(state == "ok" for state in states):
            continue
        families.append(model)
        if all(state == "missing" for state in states):
            rows.append(f"the {model} weights are not installed")
        else:
            rows.extend(registry.problems([model]))
    if rows:
        raise MissingWeightsError(f"{'; '.join(rows)} (weights folder {registry.root}). {fix_command(families)}")


@dataclass
class PortraitCheck:
    image: np.ndarray  # the photo as the renderer will read it (upright RGB)
    face: FaceCrop  # the face that will be animated


def check_portrait(path: str | Path, face: int | None, weights: str, weights_root: str | Path | None = None,
                   image: np.ndarray | None = None) -> PortraitCheck:
    """Read the photo (unless `image` is it, already read) and find the face (ImageLoadError / NoFaceError /
    FaceChoiceError name the problem). Never warns about several faces itself: the caller says it once
    (`several_faces_note`) and then passes the face's index on, so no later crop warns either."""
    registry = WeightsRegistry(weights_root)
    models_dir = registry.root if not weights.startswith("synthetic") and registry.installed("face") else None
    image = load_image(path) if image is None else image
    crop = FaceCropper(models_dir).crop(image, str(path), face=0 if face is None else face)
    return PortraitCheck(image, crop)


def several_faces_note(check: PortraitCheck, path: str | Path, face: int | None) -> str | None:
    """The one notice for a photo with several faces when none was chosen."""
    from core.face import FACE_ORDER

    n = check.face.n_faces
    if face is not None or n < 2:
        return None
    return (f"note: {n} faces in {path}; using face 1 (faces are numbered {FACE_ORDER}). Pass --face N to animate "
            "another.")

