"""Talking-head videos -> motion/audio shards + manifest.json, resumable and safe to re-run.

Per video: decode with PyAV and resample the frame timing to 25 fps (output frame k shows the decoded frame
nearest to time k / 25 s); crop the face with `core.face.FaceCropper` on the first frame, re-detect every
`redetect` frames and smooth the crop affine exponentially (a missed re-detection keeps the last crop); run
LivePortrait's motion extractor in batches on the device; convert to the 70-d layout *relative to the video's
first frame* (exp and angle and translation differences, scale ratio - 1): at inference the portrait plays the
role of frame 0, and a zero row renders it unchanged. Audio: `core.audio.load_audio` (16 kHz mono) and
`AudioFeatureExtractor.stream()` (the same windows the app streams with, see core/audio/features.py), exactly
640 samples per frame; the clip is cut to the shorter of video and audio.

Skipped with a reason (in the manifest's `skipped`): unreadable file, no video or audio track, no face in the
first frame, too short. Shards and the manifest are written atomically and the manifest is updated after each
video, so an interrupted run loses at most the video in progress and a re-run skips finished videos.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from core.layout import EXP, MOTION_DIM, POSE, SCALE, T
from core.timebase import FPS
from training.data import frame_rms, read_manifest, save_shard, write_manifest

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv")


class PreprocessError(RuntimeError):
    """The input folder cannot be processed at all (missing, no videos)."""


class SkipVideo(Exception):
    """This video cannot be used; the message is the reason recorded in the manifest."""


@dataclass
class PreprocessConfig:
    redetect: int = 10  # frames between face re-detections
    smooth: float = 0.6  # weight of the previous crop affine when a re-detection arrives
    batch: int = 32  # crops per motion-extractor call
    min_frames: int = 35  # 10 context + 25 frames
    val_fraction: float = 0.05


def find_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise PreprocessError(f"Video folder {folder} does not exist. Pass a folder of .mp4/.mov/.mkv files.")
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if not videos:
        raise PreprocessError(f"No videos (.mp4, .mov, .mkv) in {folder}. Put talking-head videos with sound there.")
    return videos


def clip_name(folder: Path, video: Path) -> str:
    rel = str(video.relative_to(folder))
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", video.stem)[:60]
    return f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"


def split_of(name: str, val_fraction: float) -> str:
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def frames_25fps(path: Path):
    """Yield RGB uint8 frames resampled to 25 fps by nearest timestamp. Raises SkipVideo on decode errors."""
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise SkipVideo(f"unreadable ({exc.__class__.__name__}: {str(exc)[:120]})") from exc
    with container:
        if not container.streams.video:
            raise SkipVideo("no video track")
        if not container.streams.audio:
            raise SkipVideo("no audio track")
        stream = container.streams.video[0]
        k = 0
        prev = None  # (time, frame)
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else (prev[0] + 1 / FPS if prev else 0.0)
                image = frame.to_ndarray(format="rgb24")
                # emit every output frame whose time is nearer to prev than to this frame
                while prev is not None and k / FPS < (prev[0] + time) / 2:
                    yield prev[1]
                    k += 1
                prev = (time, image)
        except Exception as exc:
            if prev is None:
                raise SkipVideo(f"unreadable ({exc.__class__.__name__}: {str(exc)[:120]})") from exc
        if prev is not None:
            while k / FPS < prev[0] + 0.5 / FPS:
                yield prev[1]
                k += 1


class FaceTracker:
    """Detect on the first frame, re-detect periodically, smooth the crop affine."""

    def __init__(self, cropper, redetect: int, smooth: float) -> None:
        self.cropper, self.redetect, self.smooth = cropper, redetect, smooth
        self.matrix = None
        self.n = 0

    def __call__(self, image: np.ndarray, name: str) -> np.ndarray:
        from core.face import NoFaceError

        if self.matrix is None or self.n % self.redetect == 0:
            try:
                m = self.cropper.crop(image, name).matrix
                self.matrix = m if self.matrix is None else self.smooth * self.matrix + (1 - self.smooth) * m
            except NoFaceError as exc:
                if self.matrix is None:
                    raise SkipVideo("no face in the first frame") from exc
        self.n += 1
        size = self.cropper.rule.size
        return cv2.warpAffine(image, self.matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


@torch.no_grad()
def extract_motion(motion_extractor, crops: list[np.ndarray], device: torch.device) -> np.ndarray:
    """Crops -> absolute (B, 70) rows: exp 63, pitch/yaw/roll degrees, t 3, scale (made relative later)."""
    from core.liveportrait.keypoints import headpose_bins_to_degrees

    x = torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2).float().div_(255)
    out = motion_extractor(x)
    rows = torch.zeros(len(crops), MOTION_DIM, device=device)
    rows[:, EXP] = out["exp"].reshape(len(crops), -1).float()
    rows[:, POSE] = torch.stack([headpose_bins_to_degrees(out[k].float()).reshape(-1)
                                 for k in ("pitch", "yaw", "roll")], 1)
    rows[:, T] = out["t"].reshape(len(crops), 3).float()
    rows[:, SCALE] = out["scale"].reshape(-1).float()
    return rows.cpu().numpy()


def to_relative(absolute: np.ndarray) -> np.ndarray:
    """Absolute rows -> the layout's deltas relative to the first frame (scale as a ratio - 1)."""
    rel = absolute - absolute[:1]
    rel[:, SCALE] = absolute[:, SCALE] / absolute[0, SCALE] - 1
    return rel.astype(np.float32)


def process_video(path: Path, name: str, motion_extractor, audio_extractor, cropper, cfg: PreprocessConfig,
                  device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from core.audio.io import AudioLoadError, load_audio

    tracker = FaceTracker(cropper, cfg.redetect, cfg.smooth)
    rows, crops = [], []
    for image in frames_25fps(path):
        crops.append(tracker(image, str(path)))
        if len(crops) == cfg.batch:
            rows.append(extract_motion(motion_extractor, crops, device))
            crops = []
    if crops:
        rows.append(extract_motion(motion_extractor, crops, device))
    if not rows:
        raise SkipVideo("no video frames")
    motion = to_relative(np.concatenate(rows))
    try:
        samples = load_audio(path)
    except AudioLoadError as exc:
        raise SkipVideo(f"audio: {exc}") from exc
    stream = audio_extractor.stream()
    feats = torch.cat((stream.push(samples), stream.flush())).cpu().numpy()
    n = min(len(motion), len(feats))
    if n < cfg.min_frames:
        raise SkipVideo(f"too short ({n} frames at 25 fps; need {cfg.min_frames})")
    return motion[:n], feats[:n], frame_rms(samples, n)


def preprocess(videos: str | Path, out: str | Path, motion_extractor, audio_extractor, cropper,
               cfg: PreprocessConfig | None = None, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Process every video not yet in `out`'s manifest; returns the manifest."""
    from tqdm import tqdm

    cfg = cfg or PreprocessConfig()
    folder, out = Path(videos), Path(out)
    found = find_videos(folder)
    out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = read_manifest(out)
    except Exception:
        manifest = {"items": [], "skipped": []}
    done = {item["name"] for item in manifest["items"] if (out / item["file"]).is_file()}
    manifest["items"] = [item for item in manifest["items"] if item["name"] in done]
    manifest.update(fps=FPS, features="wav2vec2-stream", relative_to="first frame")
    manifest["feature_dim"] = int(audio_extractor.dim)
    # the app rebuilds the same feature extractor from these (core.motion.generator reads AudioFeatureConfig)
    manifest["audio_config"] = dataclasses.asdict(audio_extractor.config)
    skipped = {}
    device = torch.device(device)
    bar = tqdm(found, desc="preprocess", unit="video", disable=not progress)
    for path in bar:
        name = clip_name(folder, path)
        if name in done:
            continue
        bar.set_postfix_str(path.name[:30])
        try:
            motion, feats, env = process_video(path, name, motion_extractor, audio_extractor, cropper, cfg, device)
        except SkipVideo as exc:
            skipped[name] = {"name": name, "video": str(path), "reason": str(exc)}
            print(f"skipped {path}: {exc}")
            continue
        save_shard(out / f"{name}.npz", motion, feats, env)
        manifest["items"].append({"name": name, "file": f"{name}.npz", "frames": len(motion), "video": str(path),
                                  "split": split_of(name, cfg.val_fraction)})
        manifest["skipped"] = list(skipped.values())
        write_manifest(out, manifest)
    manifest["skipped"] = list(skipped.values())
    write_manifest(out, manifest)
    print(f"{len(manifest['items'])} clips in {out}; {len(skipped)} videos skipped"
          + "".join(f"\n  {s['video']}: {s['reason']}" for s in skipped.values()))
    return manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PreprocessConfig()
    p.add_argument("videos", help="folder of talking-head videos (.mp4/.mov/.mkv with sound), searched recursively")
    p.add_argument("--out", required=True, help="dataset folder (shards + manifest.json)")
    p.add_argument("--weights", default=None, help="weights folder (default: the app's, see `python -m core weights`)")
    p.add_argument("--synthetic-weights", action="store_true", help="random tiny LivePortrait + wav2vec2 (tests)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--redetect", type=int, default=d.redetect)
    p.add_argument("--min-frames", type=int, default=d.min_frames)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")


def main(args: argparse.Namespace) -> int:
    from core.audio.features import AudioFeatureExtractor
    from core.device import pick_device
    from core.face import FaceCropper
    from core.liveportrait.config import LivePortraitConfig
    from core.liveportrait.loader import build_liveportrait, load_liveportrait
    from core.weights import WeightsRegistry

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device, half=False).device
    registry = WeightsRegistry(args.weights)
    if args.synthetic_weights:
        models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
        audio = AudioFeatureExtractor.from_config(AudioFeatureExtractor.small_config(), device=device)
        cropper = FaceCropper()
    else:
        models = load_liveportrait(registry.path("liveportrait"), device=device)
        audio = AudioFeatureExtractor.from_pretrained(registry.path("wav2vec2", "wav2vec2-base-960h/config.json")
                                                      .parent, device=device)
        cropper = FaceCropper(registry.root if registry.installed("face") else None)
    cfg = PreprocessConfig(redetect=args.redetect, batch=args.batch, min_frames=args.min_frames,
                           val_fraction=args.val_fraction)
    try:
        preprocess(args.videos, args.out, models.motion_extractor.to(device), audio, cropper, cfg, device)
    except PreprocessError as exc:
        print(f"error: {exc}")
        return 2
    return 0
