"""`python -m core render`: a portrait + an audio file -> an mp4 with the audio muxed, through the same engine
the live app uses (a file source running as fast as it can). Written to a temporary name and renamed only when
complete, so an interrupted or failed render never leaves a file that looks finished."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from core.motion.factory import KINDS
from core.timebase import SAMPLE_RATE, frames_for_samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portrait", required=True, help="portrait image (png/jpg/webp)")
    parser.add_argument("--audio", required=True, help="speech audio file (any format FFmpeg reads)")
    parser.add_argument("--out", help="output .mp4 (may be omitted with --dump-motion)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--synthetic-weights", choices=("tiny", "full"),
                        help="developer option: random stand-in networks instead of installed weights")
    parser.add_argument("--motion", choices=KINDS, default="auto", help="motion source (default: auto)")
    parser.add_argument("--motion-checkpoint", help="a DiT motion model trained with `python -m training`")
    parser.add_argument("--dump-motion", help="write per-frame motion (and the lip ratio, if any) to this .npz")
    parser.add_argument("--batch", type=int, default=8, help="frames rendered per batch")
    add_joyvasa_encoding_argument(parser)


def add_joyvasa_encoding_argument(parser: argparse.ArgumentParser) -> None:
    """`--joyvasa-encoding` (render and live): the positional encoding JoyVASA's denoiser runs with."""
    from core.motion.source import JOYVASA_ENCODINGS

    parser.add_argument("--joyvasa-encoding", choices=JOYVASA_ENCODINGS, default=None,
                        help="JoyVASA's positional encoding: prefix (the code the published weights were trained "
                             "with) or fixed (JoyVASA's code since 2025-12-09, for a checkpoint trained with "
                             "it); default: the one recorded with the checkpoint, else prefix")


class MotionRecorder:
    """Wraps a motion source and keeps every row it produces (and its aux values, e.g. the lip ratio)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.rows: list[np.ndarray] = []
        self.aux: dict[str, list[np.ndarray]] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _keep(self, rows: np.ndarray) -> np.ndarray:
        self.rows.append(rows)
        for key, value in (getattr(self.inner, "last_aux", None) or {}).items():
            self.aux.setdefault(key, []).append(np.asarray(value))
        return rows

    def pull(self) -> np.ndarray:
        return self._keep(self.inner.pull())

    def flush(self) -> np.ndarray:
        return self._keep(self.inner.flush())

    def save(self, path: str | Path) -> Path:
        arrays = {"motion": np.concatenate(self.rows) if self.rows else np.zeros((0, 70), np.float32)}
        arrays.update({k: np.concatenate(v) for k, v in self.aux.items()})
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, source=np.array(self.name), fps=np.array(25), **arrays)
        return Path(path)


def main(args: argparse.Namespace) -> int:
    from core.audio.io import AudioLoadError, load_audio
    from core.face import FaceModelError, ImageLoadError, NoFaceError, load_image
    from core.liveportrait import CheckpointError
    from core.motion.factory import MotionSourceUnavailable
    from core.weights import MissingWeightsError, WeightsChecksumError

    if not args.out and not args.dump_motion:
        print("error: give --out OUT.mp4, or --dump-motion FILE.npz (or both)", file=sys.stderr)
        return 2
    if args.out and Path(args.out).suffix.lower() != ".mp4":
        print(f"error: --out must end in .mp4 (got {args.out})", file=sys.stderr)
        return 2
    try:
        audio = load_audio(args.audio)
        image = load_image(args.portrait)
        from core.pipeline import build_pipeline

        weights = f"synthetic-{args.synthetic_weights}" if args.synthetic_weights else "auto"
        from core.motion.source import MotionSettings

        settings = MotionSettings(joyvasa_encoding=getattr(args, "joyvasa_encoding", None))
        renderer, motion = build_pipeline(weights, args.motion, args.device, args.motion_checkpoint,
                                          settings=settings, offline=True)
        motion = MotionRecorder(motion)
        portrait = renderer.prepare(image, args.portrait)  # raises NoFaceError naming the file
        print(f"motion source: {motion.name}; device: {renderer.spec.describe()}", file=sys.stderr)
        if not args.out:  # motion only: no rendering at all
            if hasattr(motion.inner, "use_models"):
                motion.inner.use_models(renderer.models)
            motion.reset(portrait)
            motion.push_audio(audio)
            motion.pull()
            motion.flush()
            print(f"wrote {motion.save(args.dump_motion)}", file=sys.stderr)
            return 0
        return _render(args, renderer, motion, image, audio)
    except (AudioLoadError, ImageLoadError, NoFaceError, FaceModelError, MissingWeightsError, WeightsChecksumError,
            CheckpointError, MotionSourceUnavailable, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _render(args, renderer, motion, image, audio) -> int:
    from tqdm import tqdm

    from core.engine import CallbackSink, Engine, EngineSettings, FileSource, VideoFileSink

    engine = Engine(renderer, motion, EngineSettings(max_batch=args.batch))
    engine.set_portrait(image)
    sink = VideoFileSink(args.out, fps=25, audio=audio)
    total = frames_for_samples(len(audio))
    bar = tqdm(total=total, unit="frame", desc="render", file=sys.stderr)
    errors: list[BaseException] = []
    engine.on_error = errors.append
    engine.add_sink(sink)
    engine.add_sink(CallbackSink(lambda frame, info: bar.update(1)))
    try:
        engine.start(FileSource(audio, realtime=False))
        while not engine.wait(0.2):
            if errors or not engine.running:
                break
        engine.stop()
        bar.close()
        if errors or sink.frames != total:
            raise RuntimeError(f"rendering failed: {errors[0] if errors else f'{sink.frames}/{total} frames'}")
        sink.close()  # finishes the file and renames it into place
    except BaseException:
        sink.abort()
        raise
    if args.dump_motion:
        print(f"wrote {motion.save(args.dump_motion)}", file=sys.stderr)
    print(f"wrote {args.out} ({total} frames, {len(audio) / SAMPLE_RATE:.2f} s)", file=sys.stderr)
    return 0
