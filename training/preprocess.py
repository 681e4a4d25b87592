"""Talking-head videos -> per-clip motion/audio files + an append-only manifest, in parallel and resumable.

Per video: decode with PyAV and resample the frame timing to 25 fps (output frame k shows the decoded frame
nearest to time k / 25 s); videos below `min_fps` are skipped (their motion would be a staircase of repeated
frames), as are videos whose decoding fails part way or whose video track stops well before the length its header
states (truncated downloads). Crop the face with `core.face.FaceCropper` on the first frame, re-detect every
`redetect` frames and smooth the crop affine exponentially (a missed re-detection keeps the last crop); run
LivePortrait's motion extractor in batches on the device; convert to the 70-d layout *relative to the video's
first frame* (exp and angle and translation differences, scale ratio - 1): at inference the portrait plays the
role of frame 0, and a zero row renders it unchanged.

Audio: `core.audio.load_audio` (16 kHz mono), then exactly the features the app streams live
(`AudioFeatureExtractor.streamed`: the same one-frame hops, left context and lookahead, encoded in batches), so
the model trains on what it will be fed. `audio_hop` > 1 trades that identity for fewer encodes (each covers the
left context + `audio_hop` new frames + the lookahead); docs/TRAINING.md has the measured difference.

Parallel and sharded: `workers` processes on one machine (each builds its own models), `shard` i/n across
machines (a hash of the clip name decides, so machines agree without talking). Each finished video appends
one line to this shard's manifest part (`training.data`); the clip files do not depend on the number of workers.
Skipped videos are recorded with the reason and retried by the next run; finished ones are never redone.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from core.layout import EXP, MOTION_DIM, POSE, SCALE, T
from core.timebase import FPS
from training.data import (
    CLIPS_DIR,
    DATASET,
    DataError,
    ManifestWriter,
    frame_rms,
    pack,
    part_path,
    read_manifest,
    read_records,
    save_shard,
    write_dataset_info,
)

log = logging.getLogger(__name__)

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
    min_fps: float = float(FPS)  # slower videos are skipped: their motion would be a staircase of repeated frames
    audio_hop: int = 1  # frames per speech-model encode (1 = exactly the app's streaming; see module doc)


@dataclass
class ModelSpec:
    """How to build the models; picklable, so every worker process builds its own."""

    weights: str | None = None  # weights folder (None: the app's)
    synthetic: bool = False  # tiny random LivePortrait + the stand-in speech model (no weights needed)
    device: str = "auto"
    threads: int = 0  # torch threads per worker (0: the cores divided among the workers)

    def build(self, worker: int = 0, workers: int = 1):
        from core.audio.features import STAND_IN_MODEL, AudioFeatureExtractor
        from core.device import pick_device
        from core.face import FaceCropper
        from core.liveportrait.config import LivePortraitConfig
        from core.liveportrait.loader import build_liveportrait, load_liveportrait
        from core.weights import WeightsRegistry

        torch.set_num_threads(self.threads or max(1, (os.cpu_count() or 1) // workers))
        device = pick_device(self.device, half=False).device
        if device.type == "cuda" and torch.cuda.device_count() > 1 and device.index is None:
            device = torch.device("cuda", worker % torch.cuda.device_count())  # workers spread over the GPUs
        registry = WeightsRegistry(self.weights)
        if self.synthetic:
            models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
            audio = AudioFeatureExtractor.from_pretrained(STAND_IN_MODEL, device=device)
            cropper = FaceCropper()
        else:
            models = load_liveportrait(registry.path("liveportrait"), device=device)
            audio = AudioFeatureExtractor.from_pretrained(
                registry.path("wav2vec2", "wav2vec2-base-960h/config.json").parent, device=device)
            cropper = FaceCropper(registry.root if registry.installed("face") else None)
        return models.motion_extractor.to(device), audio, cropper, device


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


def _unit_hash(name: str) -> float:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(name: str, val_fraction: float) -> str:
    return "val" if _unit_hash(name) < val_fraction else "train"


def shard_of(name: str, shards: int) -> int:
    """Which of `shards` machines processes a clip: a hash of its name, so every machine agrees without talking
    and adding videos later does not move the others."""
    return int(hashlib.sha1(("shard:" + name).encode()).hexdigest()[:8], 16) % shards


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard takes i/n with 0 <= i < n, e.g. 0/4 (got {text!r})")
    return int(m.group(1)), int(m.group(2))


def frames_25fps(path: Path, min_fps: float = float(FPS)):
    """Yield RGB uint8 frames resampled to 25 fps by nearest timestamp. Raises SkipVideo for unusable videos:
    unreadable, no video/audio track, a frame rate below `min_fps`, or damaged/truncated part way."""
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise SkipVideo(f"unreadable: not a video FFmpeg can open, or damaged or truncated ({exc.__class__.__name__}: "
                        f"{str(exc)[:100]}). Re-download or re-encode the file") from exc
    with container:
        if not container.streams.video:
            raise SkipVideo("no video track")
        if not container.streams.audio:
            raise SkipVideo("no audio track")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if rate is not None and float(rate) < min_fps - 0.01:
            raise SkipVideo(f"frame rate {float(rate):.2f} fps is below the {min_fps:g} fps minimum: the motion would "
                            f"step every {FPS / float(rate):.1f} frames at {FPS} fps. Use footage at {FPS} fps or more")
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
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
            at = f"{prev[0]:.2f} s" if prev else "the first frame"
            raise SkipVideo(f"damaged or truncated: decoding failed at {at} ({exc.__class__.__name__}: "
                            f"{str(exc)[:100]}). Re-download or re-encode the file") from exc
        if prev is None:
            raise SkipVideo("no video frames")
        if duration is not None and prev[0] < duration - 1.0:
            raise SkipVideo(f"truncated: the video track stops at {prev[0]:.2f} s of the {duration:.2f} s its header "
                            "states. Re-download or re-encode the file")
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
    for image in frames_25fps(path, cfg.min_fps):
        crops.append(tracker(image, str(path)))
        if len(crops) == cfg.batch:
            rows.append(extract_motion(motion_extractor, crops, device))
            crops = []
    if crops:
        rows.append(extract_motion(motion_extractor, crops, device))
    motion = to_relative(np.concatenate(rows))
    try:
        samples = load_audio(path)
    except AudioLoadError as exc:
        cause = exc.__cause__
        detail = f"{cause.__class__.__name__}: {str(cause)[:100]}" if cause is not None else str(exc)
        raise SkipVideo(f"audio track damaged or truncated ({detail}). Re-download or re-encode the file") from exc
    feats = audio_extractor.streamed(samples, hop_frames=cfg.audio_hop).cpu().numpy()
    n = min(len(motion), len(feats))
    if n < cfg.min_frames:
        raise SkipVideo(f"too short ({n} frames at 25 fps; need {cfg.min_frames})")
    return motion[:n], feats[:n], frame_rms(samples, n)


def feature_info(audio_extractor) -> dict:
    """dataset.json: the app rebuilds the same feature extractor from `audio_config` (core.motion.generator)."""
    return {"fps": FPS, "features": "wav2vec2-stream", "relative_to": "first frame",
            "feature_dim": int(audio_extractor.dim), "audio_config": dataclasses.asdict(audio_extractor.config)}


_WORKER: dict = {}


def _init_worker(spec: ModelSpec, workers: int) -> None:
    import multiprocessing

    ident = multiprocessing.current_process()._identity
    _WORKER["models"] = spec.build(ident[0] - 1 if ident else 0, workers)


def _process_one(models, folder: Path, path: Path, out: Path, cfg: PreprocessConfig) -> tuple[dict, dict]:
    """One video -> (manifest record, feature info); the clip file is written here, by the worker."""
    motion_extractor, audio_extractor, cropper, device = models
    name = clip_name(folder, path)
    try:
        motion, feats, env = process_video(path, name, motion_extractor, audio_extractor, cropper, cfg, device)
    except SkipVideo as exc:
        return {"name": name, "video": str(path), "skipped": str(exc)}, feature_info(audio_extractor)
    except Exception as exc:  # a bug or a decoder crash on one video must not stop a week-long job: recorded, logged
        log.exception("preprocess failed on %s", path)
        return ({"name": name, "video": str(path), "skipped": f"failed ({exc.__class__.__name__}: {str(exc)[:160]})"},
                feature_info(audio_extractor))
    save_shard(out / CLIPS_DIR / f"{name}.npz", motion, feats, env)
    return ({"name": name, "file": f"{CLIPS_DIR}/{name}.npz", "frames": len(motion), "video": str(path),
             "split": split_of(name, cfg.val_fraction)}, feature_info(audio_extractor))


def _work(args: tuple) -> tuple[dict, dict]:
    return _process_one(_WORKER["models"], *args)


def preprocess(videos: str | Path, out: str | Path, models: ModelSpec | tuple, cfg: PreprocessConfig | None = None,
               workers: int = 1, shard: tuple[int, int] = (0, 1), progress: bool = True) -> dict:
    """Process the videos of `shard` (i, n) not yet in `out`'s manifest; returns the merged manifest.

    `models`: a ModelSpec (built in each worker) or, in-process only, (motion_extractor, audio_extractor, cropper).
    `workers` > 1 runs that many processes (spawned: each loads its own models). Each finished video appends one
    record to this shard's manifest part, so an interrupted run loses at most the videos in progress; the clip
    files are identical whatever the number of workers (packing sorts clips by name)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    cfg = cfg or PreprocessConfig()
    folder, out = Path(videos), Path(out)
    index, shards = shard
    found = [p for p in find_videos(folder) if shard_of(clip_name(folder, p), shards) == index]
    out.mkdir(parents=True, exist_ok=True)
    done = {n for n, r in read_records(out).items() if "skipped" not in r} if (out / DATASET).is_file() else set()
    todo = [p for p in found if clip_name(folder, p) not in done]
    writer = ManifestWriter(part_path(out, index, shards))
    skipped = []
    bar = tqdm(total=len(todo), desc=f"preprocess {index}/{shards}", unit="video", disable=not progress)

    def record(result: tuple[dict, dict]) -> None:
        rec, info = result
        write_dataset_info(out, info)  # first result writes it; later ones must agree
        writer.append(rec)
        if "skipped" in rec:
            skipped.append(rec)
            print(f"skipped {rec['video']}: {rec['skipped']}", flush=True)
        bar.update(1)

    if workers <= 1:
        built = models.build() if isinstance(models, ModelSpec) else (*models, torch.device("cpu"))
        for path in todo:
            record(_process_one(built, folder, path, out, cfg))
    else:
        if not isinstance(models, ModelSpec):
            raise ValueError("workers > 1 needs a ModelSpec (each worker process builds its own models)")
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(models, workers)) as pool:
            for result in pool.map(_work, [(folder, p, out, cfg) for p in todo]):
                record(result)
    bar.close()
    if not (out / DATASET).is_file():
        raise PreprocessError(f"Nothing to do: every video of shard {index}/{shards} in {folder} is already in {out}, "
                              "or the shard has none.")
    if shards == 1:
        pack(out)
    else:
        print(f"shard {index}/{shards} done. When every shard has finished: `python -m training pack {out}`")
    manifest = read_manifest(out)
    print(f"{len(manifest['items'])} clips in {out}; {len(skipped)} videos skipped in this run"
          + "".join(f"\n  {s['video']}: {s['skipped']}" for s in skipped))
    return manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PreprocessConfig()
    p.add_argument("videos", help="folder of talking-head videos (.mp4/.mov/.mkv with sound), searched recursively")
    p.add_argument("--out", required=True, help="dataset folder (clips/, manifest/, packed/, dataset.json)")
    p.add_argument("--weights", default=None, help="weights folder (default: the app's, see `python -m core weights`)")
    p.add_argument("--synthetic-weights", action="store_true",
                   help="tiny random LivePortrait + the stand-in speech model: no weights needed, for trying it out")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (workers spread over the GPUs)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine, each with its models")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                   help="process only the videos of shard I of N (one per machine, same --out on shared storage)")
    p.add_argument("--batch", type=int, default=d.batch, help="face crops per motion-extractor call")
    p.add_argument("--redetect", type=int, default=d.redetect, help="frames between face re-detections")
    p.add_argument("--min-frames", type=int, default=d.min_frames, help="shorter clips (25 fps frames) are skipped")
    p.add_argument("--min-fps", type=float, default=d.min_fps,
                   help="videos below this frame rate are skipped (24 fps film: pass 23.9 to accept one repeated "
                        "frame per second)")
    p.add_argument("--audio-hop", type=int, default=d.audio_hop,
                   help="frames per speech-model encode: 1 reproduces the app's streaming features exactly, larger "
                        "is faster (see docs/TRAINING.md for the measured difference)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="fraction of clips held out for validation (chosen by a hash of the name)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per worker (0: cores / workers)")


def main(args: argparse.Namespace) -> int:
    spec = ModelSpec(args.weights, args.synthetic_weights, args.device, args.threads)
    cfg = PreprocessConfig(redetect=args.redetect, batch=args.batch, min_frames=args.min_frames,
                           val_fraction=args.val_fraction, min_fps=args.min_fps, audio_hop=args.audio_hop)
    try:
        preprocess(args.videos, args.out, spec, cfg, workers=args.workers, shard=args.shard)
    except (PreprocessError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
