"""Find the face in a portrait and crop it the way LivePortrait's networks expect (256x256, face centred).

Two detectors: LivePortrait's own crop models (insightface SCRFD `det_10g.onnx` + 106-point `2d106det.onnx`)
through onnxruntime when they are installed, else OpenCV's Haar cascade that ships inside the cv2 wheel, so a
fresh install can crop without any download. Both end in the same crop rule: a square of `scale` times the face
size around the face centre, moved up by `vy_ratio` of its size to keep the forehead, resampled to 256x256.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

CROP_SIZE = 256
DETECT_MAX_SIDE = 1024  # detection runs on a downscaled copy of larger images; the crop uses full resolution
MIN_FACE_PX = 40


class ImageLoadError(ValueError):
    """The portrait file is missing, unreadable or not an image."""


class NoFaceError(ValueError):
    """No face was found in the portrait."""


def load_image(path: str | Path) -> np.ndarray:
    """Read png/jpg/webp/bmp as RGB uint8 (H, W, 3); alpha is composited on white."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"Portrait not found: {path}. Check the path, or drop the image file into the app again.")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageLoadError(
            f"Cannot read {path} as an image (corrupt or unsupported format). Use a PNG, JPEG or WebP photo."
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        rgb = image[..., :3].astype(np.float32)
        alpha = image[..., 3:].astype(np.float32) / 255
        image = cv2.cvtColor((rgb * alpha + 255 * (1 - alpha)).astype(np.uint8), cv2.COLOR_BGR2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:  # 16-bit PNGs
        image = (image / (np.iinfo(image.dtype).max / 255)).astype(np.uint8)
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class CropRule:
    """LivePortrait's source-crop convention (crop_config.py: scale 2.3, vx 0, vy -0.125)."""

    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    size: int = CROP_SIZE


@dataclass(frozen=True)
class FaceCrop:
    crop: np.ndarray  # (256, 256, 3) uint8 RGB
    matrix: np.ndarray  # (2, 3) float64, image pixel coords -> crop pixel coords
    box: tuple[float, float, float, float]  # detected face box (x0, y0, x1, y1) in image pixels
    n_faces: int
    detector: str

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) crop pixel coords -> image pixel coords."""
        return cv2.invertAffineTransform(self.matrix)


def crop_matrix(center: np.ndarray, size: float, angle: float, out_size: int) -> np.ndarray:
    """Affine image->crop that maps a square of side `size` at `center`, rotated by `angle` rad, to out_size^2."""
    s = out_size / size
    c, si = np.cos(angle) * s, np.sin(angle) * s
    # rotate image by -angle about the centre, scale, then move the centre to the crop centre
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = out_size / 2 - m[:, :2] @ center
    return m


class HaarDetector:
    """OpenCV's frontal-face cascades from the cv2 wheel: no download, CPU, roughly frontal faces."""

    name = "opencv-haar"

    def __init__(self) -> None:
        root = Path(cv2.data.haarcascades)
        self._cascades = [cv2.CascadeClassifier(str(root / f)) for f in
                          ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")]
        if any(c.empty() for c in self._cascades):
            raise RuntimeError(f"OpenCV Haar cascades missing under {root}; reinstall opencv-python-headless 4.x")

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """-> [(center (2,), face size, roll angle rad)] in the image's pixels."""
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        min_side = max(MIN_FACE_PX, min(gray.shape) // 12)
        for cascade in self._cascades:
            boxes = cascade.detectMultiScale(gray, scaleFactor=1.08, minNeighbors=6, minSize=(min_side, min_side))
            if len(boxes):
                # The Haar box spans brows to mouth; LivePortrait's landmark box reaches the chin: centre a bit lower.
                return [(np.array([x + w / 2, y + h * 0.56]), float(max(w, h)), 0.0) for x, y, w, h in boxes]
        return []


class FaceCropper:
    """Detect the largest face and produce the 256x256 crop plus the affine that maps it back."""

    def __init__(self, models_dir: str | Path | None = None, rule: CropRule | None = None) -> None:
        self.rule = rule or CropRule()
        self.detector = None
        if models_dir is not None:
            from core.face_onnx import OnnxFaceDetector, onnx_models_present

            if onnx_models_present(Path(models_dir)):
                self.detector = OnnxFaceDetector(Path(models_dir))
        if self.detector is None:
            self.detector = HaarDetector()

    def crop(self, image: np.ndarray, source_name: str = "image") -> FaceCrop:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{source_name}: expected an RGB uint8 image, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        shrink = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * shrink), round(h * shrink)), interpolation=cv2.INTER_AREA) \
            if shrink < 1 else image
        faces = self.detector.detect(small)
        if not faces:
            raise NoFaceError(
                f"No face found in {source_name}. Use a clear, well-lit, frontal photo in which the face is at "
                f"least {MIN_FACE_PX} px wide and not covered."
            )
        faces.sort(key=lambda f: f[1], reverse=True)
        if len(faces) > 1:
            log.warning("%s: %d faces found; using the largest.", source_name, len(faces))
        center, size, angle = faces[0]
        center, size = center / shrink, size / shrink
        box = (center[0] - size / 2, center[1] - size / 2, center[0] + size / 2, center[1] + size / 2)
        side = size * self.rule.scale
        ux = np.array([np.cos(angle), np.sin(angle)])
        uy = np.array([-np.sin(angle), np.cos(angle)])
        center = center + ux * self.rule.vx_ratio * side + uy * self.rule.vy_ratio * side
        matrix = crop_matrix(center, side, angle, self.rule.size)
        crop = cv2.warpAffine(image, matrix, (self.rule.size, self.rule.size), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REPLICATE)
        return FaceCrop(crop=crop, matrix=matrix, box=tuple(float(v) for v in box), n_faces=len(faces),
                        detector=self.detector.name)


def paste_back(image: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CPU reference of the renderer's paste-back: warp `face` (any square size) into `image` with a soft mask.

    `matrix` maps image -> crop coords at CROP_SIZE; `mask` is (S, S) float in [0, 1] in the face's own pixels.
    """
    s = face.shape[0] / CROP_SIZE
    to_face = np.vstack([matrix * s, [0, 0, 1]])[:2]
    h, w = image.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(face, to_face, (w, h), flags=flags).astype(np.float32)
    alpha = cv2.warpAffine(mask.astype(np.float32), to_face, (w, h), flags=flags)[..., None]
    return np.clip(alpha * warped + (1 - alpha) * image, 0, 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (used to check crop/paste-back round trips)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
