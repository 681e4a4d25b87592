"""`python -m core render --portrait P --drive VIDEO|TEMPLATE.pkl --out o.mp4`: a face drives the portrait.

One output frame per driving frame on the 25 fps timeline (core/drive/video.py); the driving video's audio is
kept unless --audio is given (then that file's audio, cut to the video's length); a driving video without an
audio track gives a silent video, said once. A template (core/drive/template.py) carries no audio: --audio, or
silent. Frames without a face hold the last pose and ease to rest (core/drive/take.py), said once with a count.
Like `render`, the output is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from core.cli_args import drive_config, drive_split, face_index, face_problem, motion_settings, pipeline_kwargs
from core.drive.config import DriveConfigError
from core.drive.template import TEMPLATE_SUFFIX

SUPPORTED_LATER = ("--dump-motion", "--look / --preset", "--renderer lite")


def _problem(args: argparse.Namespace) -> str | None:
    """Argument and path problems, found before torch is imported."""
    from core.outputs import OutputPathError, check_output

    if not args.out:
        return "give --out OUT.mp4 for the driven video"
    if args.dump_motion or args.look or args.preset or args.renderer not in ("full", None):
        return (f"{', '.join(SUPPORTED_LATER)} do not work with --drive yet; leave them out (use --save-template "
                "to keep the driving motion)")
    if args.max_size < 64:
        return f"--max-size must be at least 64 pixels (got {args.max_size})"
    problem = face_problem(args)
    if problem:
        return problem
    try:
        config = drive_config(args)
    except DriveConfigError as exc:
        return str(exc)
    if getattr(args, "drive_mix", "face") == "face+voice":
        from core.drive.rows import rows_problem

        problem = drive_split(args)[1]
        if problem:
            return problem

        reason = rows_problem(config)
        if reason:
            return f"--drive-mix face+voice works with relative motion only; leave out the options for {reason}"
    paths = [("--portrait", args.portrait, "portrait image"), ("--drive", args.drive, "driving video or template")]
    if args.audio:
        paths.append(("--audio", args.audio, "audio"))
    for option, value, what in paths:
        path = Path(value)
        if not path.exists():
            return f"{what} file not found: {path}. Check the {option} path."
        if not path.is_file():
            return f"{option} {path} is a folder; give the {what} file itself."
    inputs = {"portrait": args.portrait, "drive": args.drive, "audio": args.audio}
    try:
        check_output(args.out, ".mp4", {k: v for k, v in inputs.items() if v}, "--out")
        if args.save_template:
            check_output(args.save_template, TEMPLATE_SUFFIX, {**{k: v for k, v in inputs.items() if v},
                                                               "--out": args.out}, "--save-template")
    except OutputPathError as exc:
        return str(exc)
    return None


def _audio(args: argparse.Namespace, n_frames: int, fps: int):
    """(samples (channels, n), rate) or (None, None) for a silent video; notes say which and why, once."""
    from core.audio.io import AudioLoadError, decode_audio

    is_template = Path(args.drive).suffix.lower() == TEMPLATE_SUFFIX
    source = args.audio or (None if is_template else args.drive)
    if source is None:
        print("note: a motion template carries no audio: the video is silent (add --audio SPEECH for sound)",
              file=sys.stderr)
        return None, None
    try:
        clip = decode_audio(source)
    except AudioLoadError as exc:
        if args.audio:
            raise
        print(f"note: {Path(source).name} has no usable audio track ({exc}): the video is silent (add --audio "
              "for sound)", file=sys.stderr)
        return None, None
    keep = math.ceil(n_frames / fps * clip.rate)
    return clip.stereo()[:, :keep], clip.rate


def main(args: argparse.Namespace) -> int:
    problem = _problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from core.audio.io import AudioLoadError
    from core.drive.take import NoDrivingFaceError
    from core.drive.template import TemplateError
    from core.drive.video import DrivingVideoError
    from core.face import FaceChoiceError, FaceModelError, ImageLoadError, NoFaceError, load_image
    from core.liveportrait import CheckpointError
    from core.motion.factory import MotionSourceUnavailable
    from core.weights import MissingWeightsError, WeightsChecksumError

    try:
        image = load_image(args.portrait)
        from core.pipeline import build_pipeline

        renderer, speech = build_pipeline(**pipeline_kwargs(args), settings=motion_settings(args), offline=True)
        renderer.max_output_side = args.max_size
        portrait = renderer.prepare(image, args.portrait, face=face_index(args))
        take = _take(args, renderer)
        if args.save_template:
            from core.drive.template import save_template

            print(f"wrote {save_template(take, args.save_template)}", file=sys.stderr)
        audio, rate = _audio(args, len(take), take.fps)
        if getattr(args, "drive_mix", "face") == "face+voice":
            if audio is None:
                print("error: --drive-mix face+voice needs speech: give --audio SPEECH", file=sys.stderr)
                return 2
            rows = _face_voice_rows(args, renderer, speech, portrait, take, audio, rate)
            return _render(args, renderer, portrait, take, audio, rate, rows=rows)
        return _render(args, renderer, portrait, take, audio, rate)
    except (AudioLoadError, ImageLoadError, NoFaceError, FaceChoiceError, FaceModelError, MissingWeightsError,
            WeightsChecksumError, CheckpointError, MotionSourceUnavailable, DrivingVideoError, NoDrivingFaceError,
            TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}. Free some space or choose another folder.",
              file=sys.stderr)
        return 2


def _take(args: argparse.Namespace, renderer):
    """The driving take from the video (face crop + motion extractor per frame) or from a template."""
    if Path(args.drive).suffix.lower() == TEMPLATE_SUFFIX:
        from core.drive.template import load_template

        take = load_template(args.drive)
        print(f"driving with template {args.drive}: {len(take)} frames", file=sys.stderr)
        return take
    from core.drive.take import read_take

    take = read_take(args.drive, renderer.cropper, renderer.models.motion_extractor, renderer.spec.device)
    if take.missing:
        print(f"note: no face in {take.missing} of {len(take)} frames of {Path(args.drive).name}: the portrait holds "
              "its last pose there and eases to rest after a moment", file=sys.stderr)
    return take


def _face_voice_rows(args, renderer, speech, portrait, take, audio: np.ndarray, rate: int) -> np.ndarray:
    """Face rows (core/drive/rows.py) mixed with the speech motion source's rows (core/drive/mix.py), one per
    frame of the take (speech shorter than the video: its last row holds)."""
    from core.audio.io import resample
    from core.drive.mix import mix_rows
    from core.drive.rows import motion_rows
    from core.drive.take import presence_weights
    from core.geometry import rotation_matrix
    from core.timebase import SAMPLE_RATE

    if hasattr(speech, "use_models"):
        speech.use_models(renderer.models)
    speech.reset(portrait)
    speech.push_audio(resample(audio.mean(axis=0), rate, SAMPLE_RATE).astype(np.float32))
    parts = [speech.pull(), speech.flush()]
    voice = np.concatenate([p for p in parts if len(p)]) if any(len(p) for p in parts) else None
    n = len(take)
    if voice is None:
        voice = np.zeros((n, 70), np.float32)
    if len(voice) < n:
        voice = np.concatenate([voice, np.repeat(voice[-1:], n - len(voice), axis=0)])
    motion = take.motion.to(portrait.angles.device)
    a = portrait.angles
    face = motion_rows(motion, motion[0], rotation_matrix(a[:, 0], a[:, 1], a[:, 2]), a, drive_config(args))
    return mix_rows(face.cpu().numpy(), voice[:n], presence_weights(take.present), drive_split(args)[0],
                    source_exp=portrait.exp.cpu().numpy().reshape(21, 3))


def _render(args, renderer, portrait, take, audio: np.ndarray | None, rate: int | None,
            rows: np.ndarray | None = None) -> int:
    import time

    from core.drive.render import render_take
    from core.engine import VideoFileSink
    from core.engine.sinks import FrameInfo

    sink = VideoFileSink(args.out, fps=take.fps, audio=audio, **({"audio_rate": rate} if rate else {}))
    try:
        def write(frame: np.ndarray, index: int) -> None:
            now = time.monotonic()
            sink.write(frame, FrameInfo(index=index, pts=index / take.fps, capture_time=now, emit_time=now))

        if rows is None:
            n = render_take(renderer, portrait, take, drive_config(args), write, batch=args.batch)
        else:  # face + voice: motion rows through the renderer's own path
            n = 0
            for a in range(0, len(rows), args.batch):
                for j, frame in enumerate(renderer.render(portrait, rows[a : a + args.batch])):
                    write(frame, a + j)
                    n += 1
        sink.close()
    except BaseException:
        sink.abort()
        raise
    print(f"wrote {args.out} ({n} frames at {take.fps} fps, driven by {Path(args.drive).name}"
          f"{'' if audio is not None else ', silent'})", file=sys.stderr)
    return 0
