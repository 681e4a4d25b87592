"""The portrait library: the photos a user dropped in, each with its detected face crop and a thumbnail.

Qt-free on purpose: the slow part (decoding, face detection) runs in a worker thread, and the window only
ever sees finished `Portrait` records. The index is a JSON file under the user data folder; crops and
thumbnails are PNG files next to it, named by a hash of the source file's content so re-adding the same
photo is free and renaming it does not orphan anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path

# what core.face.load_image decodes (OpenCV): the CLI takes all of them, so the app does too. HEIC/HEIF are let
# through so the loader's own sentence (convert to JPEG) is shown instead of a bare "wrong type".
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif", ".heic",
                  ".heif")
IMAGE_KINDS = "PNG, JPEG, WebP, BMP, TIFF, GIF or AVIF"
THUMB_SIZE = 128
INDEX_FILE = "library.json"


class PortraitError(Exception):
    """A dropped file cannot be used as a portrait; the message names the file, the reason and the fix."""


@dataclass(frozen=True)
class Portrait:
    path: str  # the user's original file
    digest: str  # sha1 of the file content (first 16 hex digits)
    crop: str  # 256x256 face crop PNG inside the library folder
    thumb: str  # thumbnail PNG inside the library folder
    width: int
    height: int
    faces: int = 1  # faces found in the photo (core.face.FACE_ORDER numbers them)
    face: int = 0  # the one animated, 0 = the largest; the window's face picker changes it
    look: dict = field(default_factory=dict, hash=False)  # this portrait's look: core.look.Look.changed() (neutral: {})

    @property
    def name(self) -> str:
        return Path(self.path).name


def collect_image_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand dropped files and folders (one level of recursion per folder, sorted) into image files.

    Returns the images and one message per skipped item (wrong type, missing).
    """
    found: list[Path] = []
    skipped: list[str] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*")
                                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
        elif p.exists():
            skipped.append(f"{p.name}: not a {IMAGE_KINDS} image")
        else:
            skipped.append(f"{p}: no such file")
    return found, skipped


def _write_png_atomic(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path.name}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def analyse_portrait(path: Path, cropper, folder: Path, face: int | None = None) -> Portrait:
    """Decode `path`, find the face with `cropper` (a `core.face.FaceCropper`), store crop and thumbnail
    under `folder`. `face`: which of several faces (core.face.FACE_ORDER; None: the largest). Blocking (face
    detection): call it from a worker thread. Raises `PortraitError` with the loader's own sentence (it already
    names the file and the fix, so nothing is added to it)."""
    from core.face import FaceChoiceError, ImageLoadError, NoFaceError, load_image

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PortraitError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
    digest = hashlib.sha1(data).hexdigest()[:16]
    try:
        image = load_image(path)
    except ImageLoadError as exc:
        raise PortraitError(str(exc)) from exc
    except Exception as exc:  # a decoder failure outside the loader's own checks
        raise PortraitError(f"{path.name} is not a readable image. Use a {IMAGE_KINDS} photo.") from exc
    try:
        found = cropper.crop(image, source_name=path.name, face=face)
    except (NoFaceError, FaceChoiceError) as exc:
        raise PortraitError(str(exc)) from exc
    crop_path = folder / (f"{digest}-crop.png" if not found.index else f"{digest}-face{found.index + 1}-crop.png")
    thumb_path = folder / f"{digest}-thumb.png"
    h, w = image.shape[:2]
    scale = THUMB_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    thumb = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for target, pixels in ((crop_path, np.ascontiguousarray(found.crop)), (thumb_path, thumb)):
            existed = target.exists()  # named by content: another library entry may use it already
            _write_png_atomic(target, pixels)
            if not existed:
                written.append(target)
    except OSError as exc:  # a full disk or a read-only data folder: nothing half-added stays behind
        for target in written:
            target.unlink(missing_ok=True)
        raise PortraitError(f"{path.name} could not be added: the portrait library folder {folder} is not "
                            f"writable ({exc.strerror or exc}). Free some disk space, then add it again.") from exc
    return Portrait(str(path.resolve()), digest, str(crop_path), str(thumb_path), int(w), int(h),
                    faces=int(found.n_faces), face=int(found.index))


class PortraitLibrary:
    """An ordered list of portraits persisted as `library.json` in `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.portraits: list[Portrait] = []
        self.warnings: list[str] = []
        self._load()

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX_FILE

    def _load(self) -> None:
        try:
            raw = json.loads(self.index_path.read_text(encoding="utf-8"))
            items = raw["portraits"]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.warnings.append(f"Portrait library {self.index_path} is unreadable ({exc}); starting empty.")
            return
        for item in items:
            try:
                p = Portrait(**item)
            except TypeError:
                continue
            if Path(p.crop).is_file() and Path(p.thumb).is_file():
                self.portraits.append(p)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": 1, "portraits": [asdict(p) for p in self.portraits]}, indent=2)
        with atomic_path(self.index_path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def index_of(self, path: str | Path) -> int:
        key = str(Path(path).resolve())
        for i, p in enumerate(self.portraits):
            if p.path == key:
                return i
        return -1

    def add(self, portrait: Portrait) -> int:
        """Add (or refresh) a portrait; returns its index. Persists immediately."""
        i = self.index_of(portrait.path)
        if i >= 0:
            if not portrait.look:  # re-analysed (another face): the portrait keeps its look
                portrait = replace(portrait, look=self.portraits[i].look)
            self.portraits[i] = portrait
        else:
            self.portraits.append(portrait)
            i = len(self.portraits) - 1
        self.save()
        return i

    def look_of(self, index: int):
        """The portrait's look as a core.look.Look (values from an older or hand-edited file are clamped)."""
        from core.look import Look

        return Look.from_dict(self.portraits[index].look if isinstance(self.portraits[index].look, dict) else {},
                              strict=False)

    def set_look(self, index: int, look) -> None:
        """Remember `look` (a core.look.Look) for portrait `index`; persists at once (atomic)."""
        values = look.changed()
        if values != self.portraits[index].look:
            self.portraits[index] = replace(self.portraits[index], look=values)
            self.save()

    def remove(self, index: int) -> None:
        p = self.portraits.pop(index)
        if not any(q.digest == p.digest for q in self.portraits):
            Path(p.crop).unlink(missing_ok=True)
            Path(p.thumb).unlink(missing_ok=True)
        self.save()

    def __len__(self) -> int:
        return len(self.portraits)

    def __getitem__(self, index: int) -> Portrait:
        return self.portraits[index]
