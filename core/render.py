"""The renderer: prepare a portrait once, then turn batches of motion rows into finished frames.

Everything per frame stays on the device: keypoint transform -> stitching -> warping -> SPADE -> paste-back
into the portrait with a soft mask -> uint8. The only host transfer is one uint8 copy per batch.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core import layout
from core.backends import make_backend
from core.device import DeviceSpec
from core.face import FaceCrop, FaceCropper, load_image
from core.liveportrait import KeypointInfo, LivePortraitModels, rotation_matrix, stitch, transform_keypoints
from core.look_live import LookLayer

MAX_OUTPUT_SIDE = 1280  # larger portraits are scaled down once at prepare time (Renderer.max_output_side)


def output_size(width: int, height: int, max_side: int = MAX_OUTPUT_SIDE) -> tuple[int, int]:
    """The canvas a (width, height) photo is rendered at: its own size, or scaled so its longer side is
    `max_side` (every frame pastes the face into the whole canvas, so the cost grows with its area)."""
    if max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return round(width * s), round(height * s)


@dataclass
class PreparedPortrait:
    """All per-portrait state, computed once. Tensors live on the renderer's device."""

    key: str
    image: np.ndarray  # (H, W, 3) uint8 RGB, the output canvas (possibly downscaled)
    face: FaceCrop
    feature_3d: torch.Tensor  # (1, C, D, h, w) in the storage dtype (fp16 on CUDA, else fp32)
    kp: torch.Tensor  # canonical keypoints (1, 21, 3) fp32
    exp: torch.Tensor  # (1, 21, 3)
    scale: torch.Tensor  # (1, 1)
    t: torch.Tensor  # (1, 3)
    angles: torch.Tensor  # (1, 3) pitch, yaw, roll in degrees
    x_s: torch.Tensor  # transformed source keypoints (1, 21, 3)
    roi: tuple[int, int, int, int]  # y0, y1, x0, x1 of the face region in the canvas
    # The paste-back runs in fp32 even when the networks run in fp16: an fp16 grid is off by ~0.1 px, and the
    # ROI is small next to the networks.
    grid: torch.Tensor  # (1, roi_h, roi_w, 2) fp32, canvas ROI -> generated-face sampling grid
    mask: torch.Tensor  # (1, 1, roi_h, roi_w) fp32 soft paste-back mask
    background: torch.Tensor  # (1, 3, roi_h, roi_w) fp32, the canvas ROI in [0, 1]
    canvas: torch.Tensor  # (H, W, 3) uint8 on the device

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def feather_mask(size: int, inner: float = 0.78, outer: float = 0.97) -> np.ndarray:
    """A soft rounded-square mask in crop space: 1 inside `inner`, 0 beyond `outer` (fractions of half-size)."""
    r = np.linspace(-1, 1, size, dtype=np.float32)
    d = np.maximum(np.abs(r)[None, :], np.abs(r)[:, None])
    d = np.hypot(np.maximum(np.abs(r)[None, :] - 0.5, 0), np.maximum(np.abs(r)[:, None] - 0.5, 0)) * 0.5 + d * 0.75
    m = np.clip((outer - d) / (outer - inner), 0, 1)
    return m * m * (3 - 2 * m)


class Renderer:
    """Portrait + motion rows -> finished frames. `backend` (core.backends: eager | compile | cudagraph | onnx |
    auto) runs the warping and SPADE networks; `compile=True` is `backend="compile"`. fp16/bf16 come from
    `spec.dtype` (bf16: autocast over fp32 weights, see DeviceSpec.storage_dtype). The motion extractor,
    keypoint math and MLPs always run in fp32."""

    def __init__(self, models: LivePortraitModels, spec: DeviceSpec, cropper: FaceCropper | None = None,
                 stitching: bool = True, compile: bool = False, cache_size: int = 8, backend: str = "eager") -> None:
        self.models = models.to(spec.device, spec.storage_dtype).eval()
        self.models.motion_extractor.float()  # runs once per portrait: source pose and keypoints stay fp32
        self.models.stitching.float()
        self.models.lip.float()
        self.models.eye.float()
        self.spec = spec
        self.cropper = cropper or FaceCropper()
        self.stitching = stitching
        self.max_output_side = MAX_OUTPUT_SIDE  # `render --max-size`
        self._cache: OrderedDict[str, PreparedPortrait] = OrderedDict()
        self._cache_size = cache_size
        # device frames (GPU only): one (B, H, W, 3) buffer for the portrait last composited, grown to the largest
        # batch seen and sliced; per cached portrait and batch size it was up to 36 frames x 8 portraits
        self._frames: torch.Tensor | None = None
        self._frames_key: str | None = None
        self.backend = make_backend("compile" if compile else backend, self.models, spec)
        self._warp = self.backend.warp
        self._generate = self.backend.generate
        self.look = LookLayer(self.models.eye, self.models.lip)  # the user's look on every frame (core/look_live.py)

    # ------------------------------------------------------------------ portrait
    @property
    def backend_name(self) -> str:
        return self.backend.name

    def ready(self, image: np.ndarray | str | Path, face: int | None = None) -> bool:
        """Whether `prepare` is quick (seconds at most): always, for the full renderer."""
        return True

    def warm_up(self, portrait: PreparedPortrait, max_batch: int) -> None:
        """Render every batch size once before a stream when the backend captures per batch size (CUDA graphs,
        torch.compile), so no capture happens mid-stream; other backends need nothing."""
        if not self.backend.captures_per_batch:
            return
        for b in range(1, max_batch + 1):
            self.render(portrait, np.zeros((b, layout.MOTION_DIM), np.float32))

    def frame_buffer(self, portrait: PreparedPortrait, batch: int) -> torch.Tensor:
        """A (batch, H, W, 3) device buffer holding `portrait` outside the face region. One buffer for the whole
        renderer (the largest batch so far, sliced): it is refilled when another portrait is composited."""
        buf = self._frames
        if buf is None or buf.shape[0] < batch or buf.shape[1:] != portrait.canvas.shape:
            self._frames = None  # free before allocating the larger one
            buf = self._frames = portrait.canvas.expand(batch, -1, -1, -1).clone()
        elif self._frames_key != portrait.key:
            buf.copy_(portrait.canvas.expand(buf.shape[0], -1, -1, -1))
        self._frames_key = portrait.key
        return buf[:batch]

    @torch.inference_mode()
    def prepare(self, image: np.ndarray | str | Path, source_name: str | None = None,
                face: int | None = None, on_progress=None, cancel=None) -> PreparedPortrait:
        """`face`: which face of a photo with several (core.face.FACE_ORDER, 0 = the largest). `on_progress` and
        `cancel` are the Renderer protocol's (a slow preparation reports and stops early); nothing here is slow
        enough to need them."""
        if not isinstance(image, np.ndarray):
            source_name = source_name or str(image)
            image = load_image(image)
        source_name = source_name or "image"
        key = hashlib.sha1(image.tobytes() + str(image.shape).encode() + str(face).encode()
                           + str(self.max_output_side).encode()).hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]

        h, w = image.shape[:2]
        face = self.cropper.crop(image, source_name, face=face)  # at the size given: small faces stay findable
        size = output_size(w, h, self.max_output_side)
        if size != (w, h):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            face = face.resized((h, w), image.shape[:2])
        dev, dtype = self.spec.device, self.spec.storage_dtype
        x = torch.from_numpy(face.crop).to(dev).permute(2, 0, 1)[None].float().div_(255)
        feature_3d = self.models.appearance_feature_extractor(x.to(dtype))
        info = KeypointInfo.from_motion(self.models.motion_extractor(x))
        angles = torch.stack((info.pitch, info.yaw, info.roll), dim=1)
        roi, grid, mask = self._paste_geometry(face, image.shape[:2])
        y0, y1, x0, x1 = roi
        canvas = torch.from_numpy(np.ascontiguousarray(image)).to(dev)
        background = canvas[y0:y1, x0:x1].permute(2, 0, 1)[None].float() / 255
        portrait = PreparedPortrait(
            key=key, image=image, face=face, feature_3d=feature_3d, kp=info.kp, exp=info.exp, scale=info.scale,
            t=info.t, angles=angles, x_s=info.transformed(), roi=roi, grid=grid, mask=mask,
            background=background, canvas=canvas,
        )
        self._cache[key] = portrait
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return portrait

    def _paste_geometry(self, face: FaceCrop, shape: tuple[int, int]):
        """The canvas region the crop covers, the sampling grid into the generated face, and the soft mask."""
        h, w = shape
        size = face.crop.shape[0]
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
        inv = face.inverse
        pts = corners @ inv[:, :2].T + inv[:, 2]
        x0, y0 = np.floor(pts.min(0)).astype(int).clip(0, [w, h])
        x1, y1 = np.ceil(pts.max(0)).astype(int).clip(0, [w, h])
        if x1 <= x0 or y1 <= y0:
            raise ValueError("the face crop lies outside the image")
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        m = face.matrix
        # canvas pixel index -> crop pixel index (the cv2 matrix) -> [-1, 1] with align_corners=False, where
        # index i sits at (2i + 1) / size - 1: exact for a generated face of any size (edge-aligned scaling)
        cx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5
        cy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5
        grid = np.stack((cx / size * 2 - 1, cy / size * 2 - 1), axis=-1)[None].astype(np.float32)
        grid_t = torch.from_numpy(grid).to(self.spec.device)
        mask = torch.from_numpy(feather_mask(size))[None, None].to(self.spec.device)
        mask = F.grid_sample(mask, grid_t, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (int(y0), int(y1), int(x0), int(x1)), grid_t, mask

    # ------------------------------------------------------------------ frames
    @torch.inference_mode()
    def driving_keypoints(self, portrait: PreparedPortrait, motion: torch.Tensor, look: bool = True
                          ) -> torch.Tensor:
        """Motion rows (B, 70 | 71) fp32 on the device -> driving keypoints (B, 21, 3), stitched if enabled.
        `look`: apply the user's look (self.look); False for what must show the bare portrait (the lite atlas)."""
        b = motion.shape[0]
        motion, look_delta = self.look.apply(portrait, motion) if look else (motion, None)
        angles = portrait.angles + motion[:, layout.POSE]
        rot = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        exp = layout.driving_expression(portrait.exp, motion)  # absolute lips where a row says so (layout.py)
        scale = portrait.scale * (1 + motion[:, layout.SCALE : layout.SCALE + 1])
        t = portrait.t + motion[:, layout.T]
        x_d = transform_keypoints(portrait.kp.expand(b, -1, -1), rot, exp, scale, t)
        if look_delta is not None:
            x_d = x_d + look_delta
        if self.stitching:
            x_d = stitch(self.models.stitching, portrait.x_s.expand(b, -1, -1), x_d)
        return x_d

    @torch.inference_mode()
    def look_note(self, look) -> str | None:
        """The full renderer shows every control of a look: nothing to say (lite mode names what it drops)."""
        return None

    def render_faces(self, portrait: PreparedPortrait, motion: torch.Tensor, look: bool = True) -> torch.Tensor:
        """Motion rows -> generated face crops (B, 3, S, S) in [0, 1], compute dtype, on the device."""
        b = motion.shape[0]
        x_d = self.driving_keypoints(portrait, motion, look)
        dtype = self.spec.storage_dtype
        warped = self._warp(portrait.feature_3d.expand(b, -1, -1, -1, -1), x_d.to(dtype),
                            portrait.x_s.expand(b, -1, -1).to(dtype))["out"]
        return self._generate(warped)

    @torch.inference_mode()
    def composite(self, portrait: PreparedPortrait, faces: torch.Tensor, dst: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """Paste generated faces into the portrait on the device -> (B, H, W, 3) uint8 on the device.

        Only the face ROI is computed. `dst`: a (B, H, W, 3) uint8 tensor on the device to write into; without
        it, a buffer kept per batch size (already holding the portrait) is reused on GPUs, and a fresh tensor is
        returned on the CPU (where it is the caller's host array).
        """
        b = faces.shape[0]
        y0, y1, x0, x1 = portrait.roi
        face = F.grid_sample(faces.float(), portrait.grid.expand(b, -1, -1, -1), mode="bilinear",
                             padding_mode="border", align_corners=False)
        roi = torch.lerp(portrait.background.expand(b, -1, -1, -1), face, portrait.mask)
        roi = roi.mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        if dst is None and portrait.canvas.device.type != "cpu":
            dst = self.frame_buffer(portrait, b)  # outside the ROI it holds the portrait already
        else:
            dst = torch.empty((b, *portrait.canvas.shape), dtype=torch.uint8) if dst is None else dst
            dst.copy_(portrait.canvas.expand(b, -1, -1, -1))
        dst[:, y0:y1, x0:x1] = roi
        return dst

    @torch.inference_mode()
    def render(self, portrait: PreparedPortrait, motion: torch.Tensor | np.ndarray,
               out: torch.Tensor | None = None) -> np.ndarray:
        """Motion rows (B, 70) -> finished frames (B, H, W, 3) uint8 on the host, one device-to-host copy.

        `out`: an optional reusable host tensor (B, H, W, 3) uint8 (pinned on CUDA) to copy into; without it
        the result is a new array the caller owns (steady-state callers such as the engine pass `out`).
        """
        if isinstance(motion, np.ndarray):
            motion = torch.from_numpy(motion)
        if motion.ndim != 2 or motion.shape[1] not in layout.ROW_DIMS:
            raise ValueError(f"motion must be (B, {layout.MOTION_DIM}) or (B, {layout.MOTION_DIM + 1}) rows, "
                             f"got {tuple(motion.shape)}")
        motion = motion.to(self.spec.device, torch.float32, non_blocking=True)
        faces = self.render_faces(portrait, motion)
        if self.spec.device.type == "cpu":  # the device is the host: paste straight into the caller's buffer
            return self.composite(portrait, faces, out).numpy()
        frames = self.composite(portrait, faces)
        if out is None:
            out = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=self.spec.is_cuda)
        out.copy_(frames, non_blocking=True)
        if self.spec.is_cuda:
            torch.cuda.current_stream(self.spec.device).synchronize()
        elif self.spec.device.type == "mps":
            torch.mps.synchronize()
        return out.numpy()
