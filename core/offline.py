"""`python -m core render`: a portrait + an audio file -> an mp4 with the audio muxed, through the same engine
the live app uses (a file source running as fast as it can). Written to a temporary name and renamed only when
complete, so an interrupted or failed render never leaves a file that looks finished."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.atomic import atomic_path
from core.cli import EXIT_INTERRUPTED, second_ctrl_c_quits
from core.cli_args import (
    add_drive_arguments,
    add_face_argument,
    add_look_arguments,
    add_pipeline_arguments,
    face_index,
    face_problem,
    look_from_args,
    motion_settings,
    pipeline_kwargs,
)
from core.timebase import FPS, SAMPLE_RATE, frames_for_samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portrait", required=True, help="portrait image (png/jpg/webp)")
    parser.add_argument("--audio", help="speech audio file (any format FFmpeg reads); with --drive: the audio of the "
                                         "video instead of the driving video's own")
    parser.add_argument("--out", help="output .mp4 (may be omitted with --dump-motion)")
    add_pipeline_arguments(parser)
    parser.add_argument("--dump-motion", help="write per-frame motion (and the lip ratio, if any) to this .npz")
    parser.add_argument("--batch", type=int, default=8, help="frames rendered per batch")
    parser.add_argument("--max-size", type=int, default=MAX_SIDE_DEFAULT, metavar="PX",
                        help="the video's longer side at most, in pixels: a larger photo is scaled down to it "
                             "(default %(default)s; the cost per frame grows with the area)")
    add_face_argument(parser)
    add_look_arguments(parser)
    add_drive_arguments(parser)

    from core.lite.cli import add_renderer_arguments

    add_renderer_arguments(parser, default="full")


MAX_SIDE_DEFAULT = 1280  # = core.render.MAX_OUTPUT_SIDE, which imports torch (test_structure checks they agree)
SILENT_PEAK = 1e-4  # -80 dBFS: below a 16-bit file's dither, so only digital silence is called silent


class MotionDumpError(OSError):
    """Writing the --dump-motion file failed (disk full, folder removed)."""


class MotionRecorder:
    """Wraps a motion source and keeps every row it produces (and its aux values, e.g. the lip ratio)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.rows: list[np.ndarray] = []
        self.aux: dict[str, list[np.ndarray]] = {}

    # the MotionSource protocol, passed on to the wrapped source
    @property
    def last_aux(self) -> dict[str, np.ndarray]:
        return self.inner.last_aux

    def use_models(self, models) -> None:
        self.inner.use_models(models)

    def bind_portrait(self, portrait) -> None:
        self.inner.bind_portrait(portrait)

    def reset(self, portrait=None) -> None:
        self.inner.reset(portrait)

    def configure(self, settings) -> None:
        self.inner.configure(settings)

    def push_audio(self, samples: np.ndarray) -> None:
        self.inner.push_audio(samples)

    def latency_ms(self) -> float:
        return self.inner.latency_ms()

    def _keep(self, rows: np.ndarray) -> np.ndarray:
        self.rows.append(rows)
        for key, value in self.inner.last_aux.items():
            self.aux.setdefault(key, []).append(np.asarray(value))
        return rows

    def pull(self) -> np.ndarray:
        return self._keep(self.inner.pull())

    def flush(self) -> np.ndarray:
        return self._keep(self.inner.flush())

    def save(self, path: str | Path) -> Path:
        arrays = {"motion": np.concatenate(self.rows) if self.rows else np.zeros((0, 70), np.float32)}
        arrays.update({k: np.concatenate(v) for k, v in self.aux.items()})
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, source=np.array(self.name), fps=np.array(FPS), **arrays)
        except OSError as exc:  # so the message names this file, not --out (or None)
            raise MotionDumpError(exc.errno, exc.strerror or str(exc)) from exc
        return Path(path)


def _check_paths(args: argparse.Namespace) -> str | None:
    """Every argument and path problem, found before torch is imported (so it shows in well under a second).
    Returns the message, or None when the render may start."""
    from core.outputs import OutputPathError, check_output

    if not args.out and not args.dump_motion:
        return "give --out OUT.mp4, or --dump-motion FILE.npz (or both)"
    if not args.audio:
        return "give --audio SPEECH (a speech file), or --drive VIDEO to drive the portrait with a face"
    if args.max_size < 64:
        return f"--max-size must be at least 64 pixels (got {args.max_size})"
    problem = face_problem(args) or look_from_args(args)[1]
    if problem:
        return problem
    for option, value, what in (("--portrait", args.portrait, "portrait image"), ("--audio", args.audio, "audio")):
        path = Path(value)
        if not path.exists():
            return f"{what} file not found: {path}. Check the {option} path."
        if not path.is_file():
            return f"{option} {path} is a folder; give the {what} file itself."
    inputs = {"portrait": args.portrait, "audio": args.audio}
    try:
        if args.out:
            check_output(args.out, ".mp4", inputs, "--out")
        if args.dump_motion:
            check_output(args.dump_motion, ".npz", {**inputs, "--out": args.out}, "--dump-motion")
    except OutputPathError as exc:
        return str(exc)
    return None


def main(args: argparse.Namespace) -> int:
    if getattr(args, "drive", None):  # a face drives the portrait: core/drive/offline.py
        from core.drive.offline import main as drive_main

        return drive_main(args)
    problem = _check_paths(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from core.audio.io import AudioLoadError, decode_audio
    from core.face import FaceChoiceError, FaceModelError, ImageLoadError, NoFaceError, load_image

    try:
        clip = decode_audio(args.audio).require(args.audio)
        image = load_image(args.portrait)
    except (AudioLoadError, ImageLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not np.abs(clip.samples).max() > SILENT_PEAK:  # valid, but almost surely the wrong file or a muted mic
        print(f"note: {args.audio} is silent (no sample above -80 dBFS): the face will not speak. Check that "
              "this is the recording you meant.", file=sys.stderr)
    from core.precheck import check_files, check_portrait, several_faces_note
    from core.weights import MissingWeightsError, WeightsChecksumError

    face = face_index(args)
    try:  # no network weights needed for these: said in a second, not after the models load
        check_files(pipeline_kwargs(args)["weights"], args.motion)
        found = check_portrait(args.portrait, face, pipeline_kwargs(args)["weights"], image=image)
    except (NoFaceError, FaceChoiceError, FaceModelError, ImageLoadError, MissingWeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    note = several_faces_note(found, args.portrait, face)
    if note:  # said once, here; the renderer is then told which face, so it does not say it again
        print(note, file=sys.stderr)
    face = found.face.index
    # torch from here on
    from core.lite.atlas import AtlasError
    from core.liveportrait import CheckpointError
    from core.motion.factory import MotionSourceUnavailable

    try:
        audio = clip.mono()
        from core.pipeline import build_pipeline

        renderer, motion = build_pipeline(**pipeline_kwargs(args), settings=motion_settings(args), offline=True)
        renderer.max_output_side = args.max_size
        _say_if_downscaled(image, args.portrait, args.max_size)
        motion = MotionRecorder(motion)
        portrait = renderer.prepare(image, args.portrait, face=face)  # raises NoFaceError naming the file
        if args.out and args.renderer != "full":
            from core.lite.cli import select_renderer

            renderer, _ = select_renderer(args, renderer, image, args.portrait, batch=args.batch, face=face)
        _apply_look(args, renderer)
        print(f"motion source: {motion.name}; device: {renderer.spec.describe()}; backend: {renderer.backend_name}",
              file=sys.stderr)
        if not args.out:  # motion only: no rendering at all
            motion.use_models(renderer.models)
            motion.reset(portrait)
            motion.push_audio(audio)
            motion.pull()
            motion.flush()
            print(f"wrote {motion.save(args.dump_motion)}", file=sys.stderr)
            return 0
        return _render(args, renderer, motion, image, audio, clip, face)
    except (AudioLoadError, ImageLoadError, NoFaceError, FaceChoiceError, FaceModelError, MissingWeightsError,
            WeightsChecksumError, CheckpointError, MotionSourceUnavailable, FileNotFoundError, AtlasError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing the output failed late (disk full, folder removed): no temporary names
        target = args.dump_motion if isinstance(exc, MotionDumpError) else args.out
        print(f"error: cannot write {target}: {exc.strerror or exc}. Free some space or choose another "
              "folder.", file=sys.stderr)
        return 2


def _say_if_downscaled(image: np.ndarray, path: str, max_side: int) -> None:
    """A photo larger than --max-size is rendered smaller: say so (issue 21: an 8000x6000 photo silently became a
    1280x960 video) and how to keep more."""
    from core.render import output_size

    h, w = image.shape[:2]
    out_w, out_h = output_size(w, h, max_side)
    if (out_w, out_h) != (w, h):
        print(f"note: {path} is {w}x{h}; the video is {out_w}x{out_h} (--max-size {max_side}: pass a larger "
              "--max-size to keep more, at a higher cost per frame)", file=sys.stderr)


def _apply_look(args, renderer) -> None:
    """The look from --preset / --look, from the first frame on (no easing in a file)."""
    look, _ = look_from_args(args)
    if look is None or look.is_neutral():
        return
    renderer.look.set(look, ease=False)
    print(f"look: {look.describe()}", file=sys.stderr)
    note = renderer.look_note(look)
    if note:
        print(f"note: {note}", file=sys.stderr)


def _render(args, renderer, motion, image: np.ndarray, audio, clip, face) -> int:
    from tqdm import tqdm

    from core.engine import CallbackSink, Engine, EngineSettings, FileSource, VideoFileSink

    engine = Engine(renderer, motion, EngineSettings(max_batch=args.batch))
    # the photo as loaded, not the prepared canvas: at full size it hits the renderer's cache (same face, same
    # lite atlas key); the canvas of a photo over --max-size would be detected again, smaller
    engine.set_portrait(image, face=face)
    sink = VideoFileSink(args.out, fps=FPS, audio=clip.stereo(), audio_rate=clip.rate)
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
    except KeyboardInterrupt:
        # Ctrl-C: wait for the render in progress (a torch op cannot be cut short, and a thread inside one at
        # exit aborts the process), then drop the partial file; a second Ctrl-C drops it and quits at once
        with second_ctrl_c_quits("the frame being rendered", cleanup=sink.abort):
            bar.close()
            print("stopping: finishing the frame being rendered (Ctrl-C again quits at once)", file=sys.stderr,
                  flush=True)
            engine.stop(timeout=120.0)
        sink.abort()
        print(f"interrupted: {args.out} was not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException:
        engine.stop(timeout=120.0)  # the engine thread must stop writing before the file is closed under it
        sink.abort()
        raise
    if args.dump_motion:
        print(f"wrote {motion.save(args.dump_motion)}", file=sys.stderr)
    print(f"wrote {args.out} ({total} frames, {len(audio) / SAMPLE_RATE:.2f} s; audio {clip.rate} Hz, "
          f"{clip.channels} channel(s))", file=sys.stderr)
    return 0
