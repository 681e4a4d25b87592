"""Find the face in a portrait and crop it the way LivePortrait's networks expect (256x256, face centred).

Two detectors. LivePortrait's own crop models through onnxruntime when they are installed: insightface SCRFD
(`det_10g.onnx`) boxes, 106 landmarks (`2d106det.onnx`) of the chosen face, and LivePortrait's 203 landmarks
(`landmark.onnx`, kept on the crop for eye/lip ratios). Otherwise OpenCV's Haar cascade that ships inside the cv2
wheel, so a fresh install crops without any download. Both end in the same rule: a square of `scale` times the
face size (rotated to cancel head roll when landmarks exist), moved up by `vy_ratio` of its side to keep the
forehead, resampled to 256x256.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

CROP_SIZE = 256
# detection runs on a copy of larger images downscaled to about DETECT_MAX_SIDE^2 pixels (the crop uses full
# resolution). By area, not by the longer side: a 4000x512 banner shrunk to 1024 px wide left a 131 px tall face
# strip in which no face was found; by area the face keeps 366 px and a square photo is treated as before.
DETECT_MAX_SIDE = 1024
MIN_FACE_PX = 40
HAAR_SIZE = 0.82  # LivePortrait landmark-square side / Haar box side
HAAR_CENTER_Y = 0.645  # landmark-square centre, as a fraction of the Haar box height


class ImageLoadError(ValueError):
    """The portrait file is missing, unreadable or not an image."""


class NoFaceError(ValueError):
    """No face was found in the portrait."""


class FaceChoiceError(ValueError):
    """The face asked for (`face=` / `--face N`) does not exist in the portrait."""


EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(data: bytes | np.ndarray) -> int:
    """The EXIF orientation (1..8) of an encoded image, 1 when absent or unreadable.

    Why: phones store the sensor's pixels and record the rotation in EXIF; OpenCV's IMREAD_UNCHANGED (needed
    for alpha and 16-bit PNGs) ignores it, so a portrait photo arrived lying on its side and no face was found.
    """
    import io

    from PIL import Image

    raw = bytes(data)
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and b"eXIf" not in raw and b"exif" not in raw:
        return 1  # a PNG without EXIF: Pillow would decode the whole image to look for it (2 s at 8000x6000)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            value = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # no EXIF, or a format Pillow does not know (OpenCV decodes the pixels anyway)
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright for an EXIF orientation (the TIFF/EXIF 2.3 table, as viewers show them)."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.swapaxes(0, 1)
    elif orientation == 6:
        image = image.swapaxes(0, 1)[:, ::-1]  # 90 degrees clockwise
    elif orientation == 7:
        image = image[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        image = image.swapaxes(0, 1)[::-1]  # 90 degrees counter-clockwise
    return np.ascontiguousarray(image)


def _is_heif(data: np.ndarray) -> bool:
    """An ISO-BMFF file whose brand is HEIF/HEIC (what OpenCV's wheel cannot decode; AVIF it can)."""
    head = bytes(data[:32])
    return head[4:8] == b"ftyp" and any(b in head[8:32] for b in (b"heic", b"heix", b"heif", b"hevc", b"mif1"))\
        and b"avif" not in head[8:32]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit and 32-bit integer images scaled to 8 bits; float images (TIFF/EXR, 0..1 by convention) clipped."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        return np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).astype(np.uint8)
    scaled = image.astype(np.float32) * np.float32(255 / np.iinfo(image.dtype).max)  # signed: negatives are black
    return np.round(np.clip(scaled, 0, 255)).astype(np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Read png/jpg/webp/bmp as upright RGB uint8 (H, W, 3): EXIF orientation applied, alpha composited on
    white. The one image loader: the CLI, the renderer and the app's library all read portraits through it."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"Portrait not found: {path}. Check the path, or drop the image file into the app again.")
    data = np.fromfile(path, dtype=np.uint8)
    if not data.size:
        raise ImageLoadError(f"{path} is empty (0 bytes): the download or copy did not finish. "
                             "Use the complete photo file.")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        if _is_heif(data):
            raise ImageLoadError(f"{path} is a HEIC/HEIF photo (the iPhone default), which Headcast cannot read. "
                                 "Convert it to JPEG (on the iPhone: Settings > Camera > Formats > Most Compatible, "
                                 "or share it as JPEG) and use that file.")
        raise ImageLoadError(
            f"Cannot read {path} as an image (corrupt or unsupported format). Use a PNG, JPEG or WebP photo."
        )
    image = _to_uint8(image)  # before compositing: a 16-bit alpha is 0..65535
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] in (2, 4):  # gray + alpha, BGR + alpha: composited on white
        color, alpha = image[..., :-1], image[..., -1:]
        if alpha.min() < 255:  # integer blend: an 8000x6000 RGBA photo in float32 took 2.3 GB and 19 s
            a = alpha.astype(np.uint16)
            color = ((color * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)  # <= 65152: fits uint16
        image = cv2.cvtColor(color, cv2.COLOR_GRAY2RGB) if color.shape[2] == 1 else \
            cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if bytes(data[:4]) in (b"II*\x00", b"MM\x00*"):
        return image  # OpenCV's TIFF decoder turns TIFF pixels upright itself: applying the tag again was wrong
    return apply_orientation(image, exif_orientation(data))


@dataclass(frozen=True)
class CropRule:
    """LivePortrait's source-crop convention (crop_config.py: scale 2.3, vx 0, vy -0.125, rotation on)."""

    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    size: int = CROP_SIZE
    rotate: bool = True


@dataclass(frozen=True)
class FaceCrop:
    crop: np.ndarray  # (256, 256, 3) uint8 RGB
    matrix: np.ndarray  # (2, 3) float64, image pixel coords -> crop pixel coords
    box: tuple[float, float, float, float]  # detected face box (x0, y0, x1, y1) in image pixels
    n_faces: int
    detector: str
    landmarks: np.ndarray | None = None  # (N, 2) in crop pixels (203 or 106 points; None for the fallback)
    index: int = 0  # which face was cropped, in FACE_ORDER (0: the largest)
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # every face found, in FACE_ORDER, image pixels

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) crop pixel coords -> image pixel coords."""
        return cv2.invertAffineTransform(self.matrix)

    def resized(self, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> FaceCrop:
        """The same crop for the image resized from `old_hw` to `new_hw` (cv2.resize's pixel-centre convention).

        Why: the renderer scales big portraits down to its output size, but faces are found at the size the user
        gave (a face in a 4000x512 banner shrunk to 1280 px wide is too small to detect)."""
        sy, sx = new_hw[0] / old_hw[0], new_hw[1] / old_hw[1]
        to_old = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        scale = np.array([sx, sy, sx, sy])
        return replace(self, matrix=self.matrix @ to_old, box=tuple(float(v) for v in np.array(self.box) * scale),
                       boxes=tuple(tuple(float(v) for v in np.array(b) * scale) for b in self.boxes))


@dataclass
class Detection:
    """One face: its box, and the square it is cropped from (centre, side, roll in radians) before the rule."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    center: np.ndarray  # (2,)
    size: float
    angle: float = 0.0
    landmarks: np.ndarray | None = None  # (N, 2) image pixels

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    def scaled(self, k: float) -> Detection:
        lm = None if self.landmarks is None else self.landmarks * k
        return Detection(self.box * k, self.score, self.center * k, self.size * k, self.angle, lm)


def crop_matrix(center: np.ndarray, size: float, angle: float, out_size: int) -> np.ndarray:
    """Affine image->crop that maps a square of side `size` at `center`, rotated by `angle` rad, to out_size^2."""
    s = out_size / size
    c, si = np.cos(angle) * s, np.sin(angle) * s
    # rotate image by -angle about the centre, scale, then move the centre to the crop centre
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = out_size / 2 - m[:, :2] @ center
    return m


def _eye_lip_axis(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eye centre, lip centre) from a 106-point (insightface) or 203-point (LivePortrait) landmark set."""
    if len(pts) == 106:
        eyes = (pts[[33, 35, 40, 39]].mean(0) + pts[[87, 89, 94, 93]].mean(0)) / 2
        return eyes, (pts[52] + pts[61]) / 2
    if len(pts) == 203:
        eyes = (pts[[0, 6, 12, 18]].mean(0) + pts[[24, 30, 36, 42]].mean(0)) / 2
        return eyes, (pts[48] + pts[66]) / 2
    raise ValueError(f"expected 106 or 203 landmarks, got {len(pts)}")


def rect_from_landmarks(pts: np.ndarray) -> tuple[np.ndarray, float, float]:
    """LivePortrait's face square from landmarks -> (centre, side, roll angle rad), before scale and shift.

    The face's vertical axis runs from the eye centre to the lip centre (this cancels roll); the side is the
    larger extent of the landmarks in that rotated frame, the centre is that rotated box's centre.
    """
    pts = np.asarray(pts, np.float64)
    eyes, lips = _eye_lip_axis(pts)
    uy = lips - eyes
    n = np.linalg.norm(uy)
    uy = uy / n if n > 1e-3 else np.array([0.0, 1.0])
    ux = np.array([uy[1], -uy[0]])
    angle = float(np.arctan2(ux[1], ux[0]))
    c0 = pts.mean(0)
    rot = (pts - c0) @ np.stack([ux, uy]).T
    lo, hi = rot.min(0), rot.max(0)
    mid = (lo + hi) / 2
    return c0 + ux * mid[0] + uy * mid[1], float((hi - lo).max()), angle


class HaarDetector:
    """OpenCV's frontal-face cascades from the cv2 wheel: no download, CPU, roughly frontal faces."""

    name = "opencv-haar"

    def __init__(self) -> None:
        root = Path(cv2.data.haarcascades)
        self._cascades = [cv2.CascadeClassifier(str(root / f)) for f in
                          ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")]
        self._eyes = cv2.CascadeClassifier(str(root / "haarcascade_eye.xml"))
        if any(c.empty() for c in (*self._cascades, self._eyes)):
            raise RuntimeError(f"OpenCV Haar cascades missing under {root}; reinstall opencv-python-headless 4.x")

    def detect(self, image: np.ndarray) -> list[Detection]:
        plain = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        min_side = max(MIN_FACE_PX, min(plain.shape) // 12)
        # equalised first (dim photos), then as is: a face on a large flat background (a portrait pasted into a
        # white banner) loses its contrast when the whole image's histogram is equalised, and was not found
        for gray, cascade in ((g, c) for g in (cv2.equalizeHist(plain), plain) for c in self._cascades):
            boxes = cascade.detectMultiScale(gray, scaleFactor=1.08, minNeighbors=6, minSize=(min_side, min_side))
            if len(boxes):
                # Haar boxes run from the forehead to below the mouth, wider than the jaw. LivePortrait's square is
                # the extent of the 106 landmarks (brows to chin, jaw width): measured on skimage's astronaut,
                # that is 0.82 of the Haar side, centred 0.645 of the way down the Haar box.
                return [Detection(np.array([x, y, x + w, y + h], np.float64), 1.0,
                                  np.array([x + w / 2, y + h * HAAR_CENTER_Y]), float(max(w, h)) * HAAR_SIZE)
                        for x, y, w, h in boxes]
        return []

    def refine(self, image: np.ndarray, det: Detection) -> Detection:
        """Estimate head roll from the two eyes (eye cascade in the box's upper half), as the landmarks would."""
        x0, y0, x1, y1 = (int(round(v)) for v in det.box)
        w = x1 - x0
        k = min(1.0, 160 / max(w, 1))  # eyes are found at a ~160 px face width whatever the photo's size
        upper = image[max(0, y0):max(0, y0 + (y1 - y0) * 6 // 10), max(0, x0):max(0, x1)]
        if upper.size == 0:
            return det
        gray = cv2.equalizeHist(cv2.cvtColor(cv2.resize(upper, None, fx=k, fy=k, interpolation=cv2.INTER_AREA),
                                             cv2.COLOR_RGB2GRAY))
        side = max(8, int(w * k * 0.12))
        eyes = self._eyes.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=5, minSize=(side, side),
                                           maxSize=(side * 3, side * 3))
        centers = sorted((np.array([ex + ew / 2, ey + eh / 2]) / k for ex, ey, ew, eh in eyes), key=lambda c: c[0])
        best = None
        for i in range(len(centers)):  # the pair that looks most like two eyes: apart by ~0.3-0.6 of the face
            for j in range(i + 1, len(centers)):
                d = centers[j] - centers[i]
                gap = np.hypot(*d) / w
                if 0.25 < gap < 0.65 and abs(d[1]) < 0.5 * d[0]:
                    score = abs(gap - 0.42)
                    best = (score, d) if best is None or score < best[0] else best
        if best is None:
            return det
        angle = float(np.arctan2(best[1][1], best[1][0]))
        return Detection(det.box, det.score, det.center, det.size, angle if abs(angle) > np.deg2rad(3) else 0.0)


# ---------------------------------------------------------------------------------------------------- ONNX
FACE_MODEL_FILES = {  # as laid out on the LivePortrait HF repo (and under its pretrained_weights/)
    "detector": "insightface/models/buffalo_l/det_10g.onnx",
    "landmark_106": "insightface/models/buffalo_l/2d106det.onnx",
    "landmark_203": "liveportrait/landmark.onnx",
}


class FaceModelError(RuntimeError):
    """A face-model file exists but cannot be loaded."""


def find_face_models(models_dir: str | Path) -> dict[str, Path] | None:
    """The crop models under `models_dir` (or its pretrained_weights/), or None when detector/106 are absent."""
    for root in (Path(models_dir), Path(models_dir) / "pretrained_weights"):
        paths = {k: root / v for k, v in FACE_MODEL_FILES.items()}
        if paths["detector"].is_file() and paths["landmark_106"].is_file():
            return paths
    return None


def _onnx_session(path: Path):
    """An onnxruntime session on CUDA when this onnxruntime build has it, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # corrupt or truncated download
        raise FaceModelError(
            f"Cannot load face model {path}: {str(exc).splitlines()[0]}. Re-download it with "
            f"`python -m core weights download face` (or copy it from a computer that has it: `python -m core "
            f"weights import DIR`), or delete it to use the built-in OpenCV detector."
        ) from exc


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        order = rest[inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9) <= iou]
    return keep


class ScrfdDetector:
    """insightface SCRFD (det_10g): strides 8/16/32, 2 anchors per cell, boxes and 5 points as distances."""

    strides = (8, 16, 32)
    anchors = 2

    def __init__(self, session, input_size: int = 512, threshold: float = 0.1, nms_iou: float = 0.4) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.input_size, self.threshold, self.nms_iou = input_size, threshold, nms_iou
        self._centers: dict[int, np.ndarray] = {}

    def _anchor_centers(self, stride: int) -> np.ndarray:
        if stride not in self._centers:
            n = self.input_size // stride
            ys, xs = np.mgrid[:n, :n]
            centers = np.stack((xs, ys), -1).reshape(-1, 2).astype(np.float32) * stride
            self._centers[stride] = np.repeat(centers, self.anchors, axis=0)
        return self._centers[stride]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """RGB uint8 -> boxes (N, 4), scores (N,), 5 points (N, 5, 2) in image pixels, after NMS."""
        h, w = image.shape[:2]
        s = self.input_size
        # letterbox into the top-left of an s x s canvas, keeping the aspect ratio (insightface's integer sizes)
        nh, nw = (s, max(1, int(s / (h / w)))) if h > w else (max(1, int(s * (h / w))), s)
        canvas = np.zeros((s, s, 3), np.float32)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh))
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(None, {self.input_name: blob})
        outs = [o[0] if o.ndim == 3 else o for o in outs]  # batched exports carry a leading 1
        n = len(self.strides)
        with_points = len(outs) >= 3 * n
        boxes, scores, points = [], [], []
        for i, stride in enumerate(self.strides):
            score = outs[i].reshape(-1)
            keep = score >= self.threshold
            c = self._anchor_centers(stride)[keep]
            d = outs[i + n].reshape(-1, 4)[keep] * stride
            boxes.append(np.concatenate((c - d[:, :2], c + d[:, 2:]), axis=1))
            scores.append(score[keep])
            if with_points:
                p = outs[i + 2 * n].reshape(-1, 10)[keep] * stride
                points.append(c[:, None, :] + p.reshape(-1, 5, 2))
        box, score = np.concatenate(boxes) / (nh / h), np.concatenate(scores)
        pts = np.concatenate(points) / (nh / h) if with_points else None
        keep = _nms(box, score, self.nms_iou) if len(box) else []
        return box[keep], score[keep], None if pts is None else pts[keep]


class Landmark106:
    """insightface 2d106det: a square 1.5x the box around its centre, raw RGB 0..255 in, (-1, 1) coords out."""

    def __init__(self, session) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 192

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        s = self.size
        center = (box[:2] + box[2:4]) / 2
        k = s / (max(box[2] - box[0], box[3] - box[1]) * 1.5)
        m = np.array([[k, 0, s / 2 - center[0] * k], [0, k, s / 2 - center[1] * k]])
        patch = cv2.warpAffine(image, m, (s, s), borderValue=0)
        blob = patch.astype(np.float32).transpose(2, 0, 1)[None]
        pred = self.session.run(None, {self.input_name: blob})[0][0].reshape(-1, 2)[-106:]
        pts = (pred.astype(np.float64) + 1) * (s // 2)
        return pts @ cv2.invertAffineTransform(m)[:, :2].T + cv2.invertAffineTransform(m)[:, 2]


class Landmark203:
    """LivePortrait's landmark.onnx: a 224 crop (LivePortrait rule, scale 1.5, vy -0.1) in [0, 1], 203 points."""

    size = 224

    def __init__(self, session) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, image: np.ndarray, pts106: np.ndarray) -> np.ndarray:
        center, side, angle = rect_from_landmarks(pts106)
        side *= 1.5
        center = center + np.array([-np.sin(angle), np.cos(angle)]) * (-0.1 * side)
        m = crop_matrix(center, side, angle, self.size)
        patch = cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR)
        blob = (patch.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        pred = self.session.run(None, {self.input_name: blob})[2][0].reshape(-1, 2).astype(np.float64) * self.size
        inv = cv2.invertAffineTransform(m)
        return pred @ inv[:, :2].T + inv[:, 2]


class OnnxFaceDetector:
    """LivePortrait's own crop models: SCRFD boxes, then 106 landmarks (and 203) of the chosen face."""

    name = "insightface-scrfd"

    def __init__(self, paths: dict[str, Path], session_factory=None) -> None:
        session_factory = session_factory or _onnx_session
        self.scrfd = ScrfdDetector(session_factory(paths["detector"]))
        self.landmark_106 = Landmark106(session_factory(paths["landmark_106"]))
        lm203 = paths.get("landmark_203")
        self.landmark_203 = Landmark203(session_factory(lm203)) if lm203 and Path(lm203).is_file() else None

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, scores, _ = self.scrfd(image)
        strong = scores >= 0.5  # LivePortrait keeps >= 0.1; count confident faces when there are any
        if strong.any():
            boxes, scores = boxes[strong], scores[strong]
        return [Detection(b.astype(np.float64), float(sc), (b[:2] + b[2:]) / 2, float(max(b[2] - b[0], b[3] - b[1])))
                for b, sc in zip(boxes, scores)]

    def refine(self, image: np.ndarray, det: Detection) -> Detection:
        """Landmarks of one face at full resolution -> LivePortrait's rotated square (106-point rule)."""
        pts = self.landmark_106(image, det.box)
        center, size, angle = rect_from_landmarks(pts)
        if self.landmark_203 is not None:
            pts = self.landmark_203(image, pts)
        return Detection(det.box, det.score, center, size, angle, pts)


FACE_ORDER = "largest first (ties: left to right)"


def order_faces(faces: list[Detection]) -> list[Detection]:
    """Faces numbered the way the CLI's `--face N` and the app's face picker count them: FACE_ORDER."""
    return sorted(faces, key=lambda f: (-round(f.area), float(f.box[0])))


class FaceCropper:
    """Detect the faces and crop one (the largest unless `face` says otherwise): the 256x256 crop plus the
    affine that maps it back. Several faces are never chosen silently: a warning names them and the choice."""

    def __init__(self, models_dir: str | Path | None = None, rule: CropRule | None = None) -> None:
        self.rule = rule or CropRule()
        paths = find_face_models(models_dir) if models_dir is not None else None
        self.detector = OnnxFaceDetector(paths) if paths else HaarDetector()

    def crop(self, image: np.ndarray, source_name: str = "image", face: int | None = None) -> FaceCrop:
        """`face`: index in FACE_ORDER (0 = the largest); None takes the largest and warns when there are more."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{source_name}: expected an RGB uint8 image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        shrink = min(1.0, DETECT_MAX_SIDE / float(np.sqrt(h * w)))
        small = cv2.resize(image, (round(w * shrink), round(h * shrink)), interpolation=cv2.INTER_AREA) \
            if shrink < 1 else image
        faces = self.detector.detect(small)
        if not faces:
            raise NoFaceError(
                f"No face found in {source_name}. Use a clear, well-lit, frontal photo in which the face is at "
                f"least {MIN_FACE_PX} px wide and not covered."
            )
        faces = order_faces(faces)
        if face is not None and not 0 <= face < len(faces):
            raise FaceChoiceError(
                f"{source_name} has {len(faces)} face(s); face {face + 1} does not exist. Choose 1 to {len(faces)} "
                f"(numbered {FACE_ORDER})."
            )
        if face is None and len(faces) > 1:
            log.warning("%s: %d faces found; using the largest (face 1 of %d, numbered %s). Choose another with "
                        "--face N or the app's face picker.", source_name, len(faces), len(faces), FACE_ORDER)
        index = face or 0
        boxes = tuple(tuple(float(v) / shrink for v in f.box) for f in faces)
        face = self.detector.refine(image, faces[index].scaled(1 / shrink))
        matrix = self._matrix(face)
        crop = self._warp(image, matrix, self.rule.size)
        landmarks = None
        if face.landmarks is not None:
            landmarks = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
        return FaceCrop(crop=crop, matrix=matrix, box=tuple(float(v) for v in face.box), n_faces=len(faces),
                        detector=self.detector.name, landmarks=landmarks, index=index, boxes=boxes)

    def _matrix(self, face: Detection) -> np.ndarray:
        r = self.rule
        side = face.size * r.scale
        angle = face.angle if r.rotate else 0.0
        ux = np.array([np.cos(angle), np.sin(angle)])
        uy = np.array([-np.sin(angle), np.cos(angle)])
        center = face.center + ux * r.vx_ratio * side + uy * r.vy_ratio * side
        return crop_matrix(center, side, angle, r.size)

    @staticmethod
    def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
        """Resample without aliasing: a large face is first area-averaged near the crop's resolution."""
        k = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # crop px per image px
        if k < 0.5:
            f = min(1.0, 2 * k)
            h, w = image.shape[:2]
            nw, nh = max(1, round(w * f)), max(1, round(h * f))
            small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            # image px -> small px (pixel centres): x_s = (x + 0.5) * (nw / w) - 0.5
            sx, sy = nw / w, nh / h
            to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
            m = matrix @ np.linalg.inv(to_small)
            return cv2.warpAffine(small, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def paste_back(image: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CPU reference of the renderer's paste-back: warp `face` (any square size) into `image` with a soft mask.

    `matrix` maps image -> crop coords at CROP_SIZE; `mask` is (S, S) float in [0, 1] in the face's own pixels.
    """
    s = face.shape[0] / CROP_SIZE
    to_face = np.vstack([matrix * s, [0.0, 0.0, 1.0]])  # crop u -> face (u + 0.5) * s - 0.5 (edge-aligned)
    to_face[0, 2] += 0.5 * s - 0.5
    to_face[1, 2] += 0.5 * s - 0.5
    # warped with the face -> image map, as LivePortrait's paste_back does (OpenCV then inverts it itself): handing
    # OpenCV the inverse map instead quantises the sample positions differently, up to 8 levels apart at hard edges
    to_image = np.linalg.inv(to_face)[:2]
    h, w = image.shape[:2]
    warped = cv2.warpAffine(face, to_image, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
    alpha = cv2.warpAffine(mask.astype(np.float32), to_image, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    return np.clip(alpha * warped + (1 - alpha) * image, 0, 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (used to check crop/paste-back round trips)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
