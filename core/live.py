"""`python -m core live`: the app's live session without a window.

Input is a microphone, the test generator, or a file played at real-time pace (as if someone spoke it into a
microphone); output goes to the virtual camera with `--camera`. Once a second a status line says what the
engine manages; `--stats-json` writes the run's figures, measured at the sink (what a viewer would get):
output and render fps, drops, repeats, latency percentiles and a per-second latency series, so latency that
grows with running time is visible at a glance.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from core.cli import EXIT_INTERRUPTED, second_ctrl_c_quits
from core.cli_args import (
    add_drive_mix_arguments,
    add_face_argument,
    add_look_arguments,
    add_pipeline_arguments,
    drive_split,
    face_index,
    face_problem,
    look_from_args,
    motion_settings,
    pipeline_kwargs,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portrait", required=True, help="portrait image (png/jpg/webp)")
    parser.add_argument("--input", default="mic",
                        help="mic (default microphone) | mic:NAME | test (generated syllables) | an audio file")
    parser.add_argument("--camera", nargs="?", const="required", choices=("required", "optional"),
                        help="send frames to the virtual camera; without one the run stops at once (exit 2) "
                             "unless 'optional' (then it runs without it)")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: file end or Ctrl-C)")
    parser.add_argument("--stats-json", help="write the run's figures to this JSON file")
    parser.add_argument("--loop", action="store_true", help="file input: start again at its end")
    parser.add_argument("--latency-budget", type=float, metavar="MS",
                        help="mouth-to-frame budget in ms (default: 300 on a GPU, 600 on a CPU)")
    parser.add_argument("--batch", type=int, default=8, help="frames rendered per batch at most")
    parser.add_argument("--quiet", action="store_true", help="no status line every second")
    parser.add_argument("--drive", metavar="camera|camera:N|VIDEO",
                        help="face + voice: head, eyes and expression follow this camera (or a video played as one) "
                             "while the mouth follows the input; without a face the avatar eases back to speech")
    add_drive_mix_arguments(parser, default="face+voice", speech="the input")
    parser.add_argument("--no-drive-smoothing", action="store_true",
                        help="take the face's motion as the camera gives it (default: a one-euro filter holds a still "
                             "face still and lets movement through, python -m core bench drive-smooth)")
    add_pipeline_arguments(parser, motion_default="retarget")
    add_face_argument(parser)
    add_look_arguments(parser)
    from core.lite.cli import add_renderer_arguments

    add_renderer_arguments(parser, default="auto")  # live means live: lite where full cannot keep up


def _check_args(args: argparse.Namespace) -> str | None:
    """Path and value errors, found before torch is imported (milliseconds, not seconds)."""
    if not Path(args.portrait).is_file():
        return f"portrait not found: {args.portrait}. Give the path of a photo (png/jpg/webp)."
    kind = args.input
    if not (kind in ("mic", "test", "generator", "default") or kind.startswith("mic:")) and not Path(kind).is_file():
        return (f"--input {kind}: no such audio file. Give an audio file, 'mic', 'mic:NAME' or 'test' "
                "(generated speech-like syllables).")
    if args.seconds is not None and not args.seconds > 0:
        return f"--seconds must be positive (got {args.seconds})"
    if args.batch < 1:
        return f"--batch must be at least 1 (got {args.batch})"
    if args.latency_budget is not None and not args.latency_budget > 0:
        return f"--latency-budget must be positive milliseconds (got {args.latency_budget})"
    if args.stats_json and not Path(args.stats_json).resolve().parent.is_dir():
        return f"--stats-json {args.stats_json}: its folder does not exist; create it first"
    if args.stats_json:  # a folder, a read-only place or the portrait itself: said now, not after the run
        from core.outputs import OutputPathError, check_output

        try:
            check_output(args.stats_json, ".json", {"portrait": args.portrait}, "--stats-json")
        except OutputPathError as exc:
            return str(exc)
    return face_problem(args) or look_from_args(args)[1] or drive_split(args)[1]


class SinkClock:
    """A sink that keeps (emit time, latency, repeated) per frame: the figures the JSON reports are measured
    where frames leave the engine, independently of the engine's own counters."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, bool]] = []

    def write(self, frame, info) -> None:
        self.rows.append((info.emit_time, info.emit_time - info.capture_time, info.repeated))

    def close(self) -> None:
        pass


def summarize(rows: list[tuple[float, float, bool]], t_start: float, t_end: float) -> dict:
    """Output fps (repeats included), latency percentiles of new frames and a per-second latency series."""
    duration = max(t_end - t_start, 1e-9)
    emit = np.array([r[0] for r in rows]) if rows else np.zeros(0)
    new = [(t, lat) for t, lat, rep in rows if not rep]
    lat_ms = np.array([lat for _, lat in new]) * 1000 if new else np.zeros(0)
    series, series_max = [], []
    for second in range(int(np.ceil(duration))):
        sel = [lat * 1000 for t, lat in new if second <= t - t_start < second + 1]
        series.append(round(float(np.median(sel)), 1) if sel else None)
        series_max.append(round(float(np.max(sel)), 1) if sel else None)
    return {
        "seconds": round(duration, 3),
        "output_fps": round(len(emit) / duration, 2),
        "new_frames_per_s": round(len(new) / duration, 2),
        "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 1) if len(lat_ms) else None,
        "latency_ms_p95": round(float(np.percentile(lat_ms, 95)), 1) if len(lat_ms) else None,
        "latency_ms_max": round(float(lat_ms.max()), 1) if len(lat_ms) else None,
        "latency_ms_per_second": series,
        "latency_ms_max_per_second": series_max,
    }


def main(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.drive:  # before any model loads: a camera that cannot open is a setup problem
        from core.drive.capture import drive_problem

        problem = drive_problem(args.drive)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    face = _precheck(args)  # before torch: no face or missing files are said in a second
    if isinstance(face, str):
        print(f"error: {face}", file=sys.stderr)
        return 2
    try:
        return _run(args, face)
    except KeyboardInterrupt:  # during model loading: nothing is running yet
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, face: int) -> int:
    from core.audio.io import AudioLoadError
    from core.drive.camera import CameraError
    from core.drive.video import DrivingVideoError
    from core.engine import AudioSourceError, EngineSettings
    from core.face import FaceChoiceError, FaceModelError, ImageLoadError, NoFaceError
    from core.lite.atlas import AtlasError
    from core.liveportrait import CheckpointError
    from core.motion.factory import MotionSourceUnavailable
    from core.session import InputChoice, LiveSession, MicrophoneNotConnected, SessionConfig
    from core.weights import MissingWeightsError, WeightsChecksumError

    camera_wanted = bool(args.camera)
    if args.camera:  # said before any model loads: a missing camera is a setup problem, not a run-time one
        problem = camera_problem()
        if problem and args.camera == "required":
            print(f"error: --camera: {problem}; or run with --camera optional to go on without it", file=sys.stderr)
            return 2
        if problem:
            print(f"camera: none, running without it ({problem})", file=sys.stderr)
            camera_wanted = False
    choice = InputChoice.parse(args.input)
    config = SessionConfig.from_pipeline_kwargs(
        pipeline_kwargs(args), engine=EngineSettings(max_batch=args.batch, latency_budget_ms=args.latency_budget,
                                                     motion=motion_settings(args)),
        loop_files=args.loop, renderer=args.renderer, atlas=args.atlas, look=look_from_args(args)[0],
        drive=args.drive, drive_options=_drive_options(args))
    finished = threading.Event()
    errors: list[BaseException] = []

    def failed(exc: BaseException) -> None:
        errors.append(exc)
        finished.set()

    session = LiveSession(on_error=failed, on_finished=finished.set,
                          on_message=lambda text: print(text, file=sys.stderr),
                          on_camera=lambda text: print(f"camera: {text}", file=sys.stderr))
    clock = SinkClock()
    from core.lite.cli import AtlasProgressBar

    session.on_atlas_progress = AtlasProgressBar()
    session.on_renderer_note = lambda text: print(f"renderer: {text}", file=sys.stderr, flush=True)
    interrupted = False
    try:
        t_start = time.monotonic()  # replaced by the stream's start once the models are loaded
        # the path, not decoded pixels: a photo without a face (or without face N) is then named in the message
        camera = session.start(config, args.portrait, choice, camera=camera_wanted, sinks=(clock,),
                               face=face)
        t_start = time.monotonic()
        engine = session.engine
        print(f"live: {engine.motion.name} motion on {engine.renderer.spec.describe()}, input {args.input}, "
              f"camera {camera}, budget {engine.stats().latency_budget_ms:.0f} ms; {session.renderer_choice.reason}; "
              f"{f'face driving on ({args.drive}); ' if args.drive else ''}Ctrl-C stops",
              file=sys.stderr)
        note = engine.renderer.look_note(config.look) if config.look is not None else None
        if note:
            print(f"note: {note}", file=sys.stderr)
        deadline = None if args.seconds is None else t_start + args.seconds
        while not finished.is_set():
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0 or finished.wait(wait):
                break
            if not args.quiet:
                _status(session.stats(), session.drive)
    except KeyboardInterrupt:
        interrupted = True
    except (AudioLoadError, AudioSourceError, MicrophoneNotConnected, ImageLoadError, NoFaceError, FaceChoiceError,
            FaceModelError,
            MissingWeightsError, WeightsChecksumError, CheckpointError, MotionSourceUnavailable,
            FileNotFoundError, AtlasError, CameraError, DrivingVideoError) as exc:
        session.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t_end = time.monotonic()
    stats = session.stats()
    reported: list[bool] = []

    def report() -> None:
        """The summary and stats file, once: before the wait for the device, or from a second Ctrl-C that came
        while it was being written (so a quick double Ctrl-C loses nothing)."""
        if stats is None or reported:
            return
        motion_name = session.engine.motion.name if session.engine is not None else config.motion
        _write_report(args, config, session, clock, stats, t_start, t_end, motion_name, finished, errors,
                      interrupted)
        reported.append(True)  # after the write: one cut short by a second Ctrl-C is written again in full

    with second_ctrl_c_quits("the frame being rendered", cleanup=report):  # from here on, Ctrl-C quits at once
        if interrupted:  # first, so the report that follows is not mistaken for the end
            print("stopping: finishing the frame being rendered (Ctrl-C again quits at once)", file=sys.stderr,
                  flush=True)
        report()
        session.close(timeout=120.0)  # waits for a render in progress: nothing may run on the device at exit
    if stats is None:
        return EXIT_INTERRUPTED if interrupted else 1
    if errors:
        print(f"error: the run stopped: {errors[0]}", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if interrupted else 0


def _precheck(args: argparse.Namespace) -> int | str:
    """The checks that need no network weights, before any load: the run's files are installed and the photo
    has the face asked for. Returns the face index to use, or the problem. A photo with several faces and no
    --face is said once here; the index is then passed on, so nothing later says it again."""
    from core.face import FaceChoiceError, FaceModelError, ImageLoadError, NoFaceError
    from core.precheck import check_files, check_portrait, several_faces_note
    from core.weights import MissingWeightsError

    weights = pipeline_kwargs(args)["weights"]
    try:
        check_files(weights, args.motion)
        found = check_portrait(args.portrait, face_index(args), weights)
    except (NoFaceError, FaceChoiceError, FaceModelError, ImageLoadError, MissingWeightsError) as exc:
        return str(exc)
    note = several_faces_note(found, args.portrait, face_index(args))
    if note:
        print(note, file=sys.stderr)
    return found.face.index


def camera_problem() -> str | None:
    """Why no virtual camera can be opened here, with the fix, on one line; None when one opens."""
    from core.engine.sinks import VirtualCameraSink, VirtualCameraUnavailable, camera_install_hint

    try:
        VirtualCameraSink(width=64, height=64).close()
    except VirtualCameraUnavailable as exc:
        cause = str(exc.__cause__ or "").strip().rstrip(".")
        hint = camera_install_hint().splitlines()
        steps = " && ".join(line.strip() for line in hint[1:])
        fix = hint[0].rstrip(".") + (f": {steps}" if steps else "")
        return f"no virtual camera could be opened{f' ({cause})' if cause else ''}. {fix}"
    return None


def _write_report(args, config, session, clock, stats, t_start: float, t_end: float, motion_name: str,
                  finished: threading.Event, errors: list, interrupted: bool) -> None:
    """The run's figures: printed, and written to --stats-json (atomically)."""
    from core.atomic import atomic_path

    report = {
        "portrait": str(args.portrait), "input": args.input, "motion": motion_name, "weights": config.weights,
        "device": stats.device, "camera": args.camera,
        "camera_state": session.camera_sink.describe() if session.camera_sink is not None else "off",
        "renderer": session.renderer_choice.kind if session.renderer_choice else config.renderer,
        "renderer_reason": session.renderer_choice.reason if session.renderer_choice else None,
        **summarize(clock.rows, t_start, t_end),
        "render_fps": round(stats.frames_rendered / max(t_end - t_start, 1e-9), 2),
        "render_fps_recent": round(stats.render_fps, 2), "capacity_fps": round(stats.capacity_fps, 2),
        "frames_rendered": stats.frames_rendered, "frames_emitted": stats.frames_emitted,
        "drops": stats.drops, "drops_before_render": stats.drops_before_render,
        "drops_after_render": stats.drops_after_render, "catch_up_drops": stats.catch_up_drops,
        "repeats": stats.repeats,
        "latency_budget_ms": round(stats.latency_budget_ms, 1), "first_frame_ms": round(stats.first_frame_ms, 1),
        "stage_ms": {k: round(v, 2) for k, v in stats.stage_ms.items()},
        "keeping_up": stats.keeping_up, "state": stats.state,
        "finished": finished.is_set() and not errors, "interrupted": interrupted,
        "error": str(errors[0]) if errors else None,
        **_drive_report(args, session),
    }
    _status(stats, session.drive)
    print(f"latency p50 {report['latency_ms_p50']} ms, p95 {report['latency_ms_p95']} ms, max "
          f"{report['latency_ms_max']} ms; output {report['output_fps']} fps, rendered {report['render_fps']} fps, "
          f"drops {report['drops']}, repeats {report['repeats']}", file=sys.stderr)
    if args.stats_json:
        with atomic_path(args.stats_json, suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.stats_json}", file=sys.stderr)


def _drive_options(args):
    from core.drive.config import LiveDriveOptions
    from core.drive.smooth import Smoothing

    return LiveDriveOptions(split=drive_split(args)[0], smoothing=None if args.no_drive_smoothing else Smoothing())


def _drive_report(args, session) -> dict:
    """Face driving's figures (camera-to-frame latency, rows with and without a face), next to the audio's."""
    drive = session.drive
    if not args.drive or drive is None:
        return {}
    src = drive.source
    return {"drive": args.drive, **drive.latency.summary(), "drive_rows_with_face": src.rows_with_face,
            "drive_rows_without_face": src.rows_without_face, "drive_stale_frames": src.stale_samples,
            "drive_source_gone": drive.feed.gone}


def _status(stats, drive=None) -> None:
    if stats is None:
        return
    if drive is not None:
        lat = drive.latency.summary()["camera_latency_ms_p50"]
        face = f"  {drive.source.state}, camera p50 {lat if lat is not None else '-'} ms"
    else:
        face = ""
    latency = (f"p50 {stats.latency_ms_p50:6.0f} ms p95 {stats.latency_ms_p95:6.0f} ms" if stats.latency_ms_p50 > 0
               else "p50      - (no new frame in the last seconds)")  # never a made-up 0 ms
    print(f"render {stats.render_fps:5.1f} fps  output {stats.output_fps:4.1f} fps  latency {latency}  drops "
          f"{stats.drops}  repeats {stats.repeats}  {stats.state}{face}", file=sys.stderr, flush=True)
