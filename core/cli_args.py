"""Command-line arguments shared by the commands that build a pipeline (`render`, `live`, benches).

One function adds them, so a new pipeline option (a renderer kind, a backend) is added once and every command
gets it; `pipeline_kwargs(args)` turns them back into `build_pipeline` arguments. No torch import here: argument
errors must come back in milliseconds.
"""

from __future__ import annotations

import argparse

from core.backends import BACKENDS, PRECISIONS
from core.motion.factory import KINDS
from core.motion.source import JOYVASA_ENCODINGS, MotionSettings

# Network sizes, one vocabulary for every command (issue 21: `official|tiny` here, `tiny|full` there): `tiny` is
# the small test size, `official` LivePortrait's published size. "full" (the old spelling of `official` in
# --synthetic-weights and `bench latency`) is still accepted; it was easy to mistake for `--renderer full`.
SIZES = ("tiny", "official")
SIZE_ALIASES = {"full": "official"}
SIZE_HELP = "network size: tiny (the small test size) or official (LivePortrait's published size; 'full' also works)"


def size_value(text: str) -> str:
    """argparse `type` for a size: the aliases become their canonical word (choices then checks it)."""
    return SIZE_ALIASES.get(text, text)


def add_size_argument(parser: argparse.ArgumentParser, default: str, help_text: str = SIZE_HELP) -> None:
    """`--size tiny|official` for the benches, defined once."""
    parser.add_argument("--size", type=size_value, choices=SIZES, default=default,
                        help=f"{help_text} (default: {default})")


def add_face_argument(parser: argparse.ArgumentParser) -> None:
    """`--face N` for the commands that take a portrait (`render`, `live`): 1-based, as people count."""
    from core.face import FACE_ORDER

    parser.add_argument("--face", type=int, metavar="N",
                        help=f"which face to animate when the photo has several: 1, 2, ... numbered {FACE_ORDER}")


def face_index(args: argparse.Namespace) -> int | None:
    """`--face` as the 0-based index core.face takes (None: the largest, with a warning when there are more)."""
    return None if args.face is None else args.face - 1


def face_problem(args: argparse.Namespace) -> str | None:
    if args.face is not None and args.face < 1:
        return f"--face counts from 1 (the largest face); got {args.face}"
    return None


def add_pipeline_arguments(parser: argparse.ArgumentParser, motion_default: str = "auto") -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--synthetic-weights", type=size_value, choices=SIZES, metavar="SIZE",
                        help="developer option: random stand-in networks instead of installed weights, tiny or "
                             "official size ('full' also works)")
    parser.add_argument("--motion", choices=KINDS, default=motion_default,
                        help=f"motion source (default: {motion_default})")
    parser.add_argument("--motion-checkpoint", help="a DiT motion model trained with `python -m training`")
    parser.add_argument("--backend", choices=BACKENDS, default="eager",
                        help="renderer network backend: eager, compile (torch.compile), cudagraph (CUDA graphs per "
                             "batch size), onnx (ONNX Runtime: TensorRT > CUDA > CPU provider), auto (the fastest "
                             "that passes a self-check here, measured once and remembered)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="renderer compute precision (auto: fp16 on CUDA, fp32 elsewhere; bf16 = autocast)")
    parser.add_argument("--joyvasa-encoding", choices=JOYVASA_ENCODINGS, default=None,
                        help="JoyVASA's positional encoding: prefix (the code the published weights were trained "
                             "with) or fixed (JoyVASA's code since 2025-12-09, for a checkpoint trained with it); "
                             "default: the one recorded with the checkpoint, else prefix")


def motion_settings(args: argparse.Namespace) -> MotionSettings:
    """The motion settings the pipeline options carry (JoyVASA's positional encoding)."""
    return MotionSettings(joyvasa_encoding=getattr(args, "joyvasa_encoding", None))


def weights_choice(args: argparse.Namespace) -> str:
    """'auto' (installed weights) or 'synthetic-tiny' / 'synthetic-official'."""
    return f"synthetic-{args.synthetic_weights}" if getattr(args, "synthetic_weights", None) else "auto"


def pipeline_kwargs(args: argparse.Namespace) -> dict:
    """`build_pipeline` keywords from the options `add_pipeline_arguments` added. A new pipeline option goes in
    both functions; `core.session.SessionConfig` passes keys it does not know through `options`."""
    return {"weights": weights_choice(args), "motion": args.motion, "device": args.device,
            "motion_checkpoint": args.motion_checkpoint, "backend": args.backend, "precision": args.precision}


def add_look_arguments(parser: argparse.ArgumentParser) -> None:
    """`--look` and `--preset` for the commands that render (`render`, `live`): LivePortrait's editor controls
    (core/look.py) on top of any motion."""
    from core.look import ALL_CONTROLS
    from core.look_presets import BUILTIN_PRESETS

    names = ", ".join(f"{c.name} {c.minimum:g}..{c.maximum:g}" for c in ALL_CONTROLS)
    parser.add_argument("--look", metavar="NAME=VALUE,...",
                        help=f"the avatar's look, e.g. smile=0.5,gaze_x=-10 (eye_ratio/lip_ratio=own: the "
                             f"portrait's own). Controls and ranges (LivePortrait's editor): {names}")
    parser.add_argument("--preset", metavar="NAME",
                        help=f"a named look: {', '.join(BUILTIN_PRESETS)} or one saved in the app; --look values "
                             "apply on top")


def look_from_args(args: argparse.Namespace):
    """-> (core.look.Look, None) or (None, the one-line problem). Torch-free, so a typo is reported at once."""
    from core.look import LookError
    from core.look_presets import PresetStore, resolve_look

    look_text, preset = getattr(args, "look", None), getattr(args, "preset", None)
    try:
        store = PresetStore() if preset else None
        return resolve_look(look_text, preset, store), None
    except LookError as exc:
        return None, f"{exc}. See --help for the controls and their ranges."


def add_drive_arguments(parser: argparse.ArgumentParser) -> None:
    """`--drive` and LivePortrait's driving options (core/drive/config.py), for the commands that render."""
    from core.drive.config import DRIVING_OPTIONS, REGIONS

    parser.add_argument("--drive", metavar="VIDEO|TEMPLATE.pkl",
                        help="drive the portrait with a face: a video of a face (its audio is kept unless --audio "
                             "is given) or a LivePortrait motion template (.pkl)")
    parser.add_argument("--drive-region", choices=REGIONS, default="all",
                        help="what the driving face moves (LivePortrait's animation_region; default: all)")
    parser.add_argument("--drive-option", choices=DRIVING_OPTIONS, default="expression-friendly",
                        help="LivePortrait's driving_option (default: expression-friendly)")
    parser.add_argument("--drive-multiplier", type=float, default=1.0, metavar="X",
                        help="how far the driven keypoints move from the portrait's (default: 1)")
    parser.add_argument("--drive-absolute", action="store_true",
                        help="copy the driver's pose and expression instead of its motion since the first frame")
    parser.add_argument("--no-drive-stitching", action="store_true", help="turn LivePortrait's stitching off")
    parser.add_argument("--drive-retarget", choices=("eyes", "lips", "both"),
                        help="eye / lip openness from the driver's landmarks (LivePortrait's retargeting)")
    parser.add_argument("--drive-normalize-lip", action="store_true",
                        help="close the portrait's lips before animating (LivePortrait's flag_normalize_lip)")
    add_drive_mix_arguments(parser, default="face", speech="--audio, else the driving video's audio")
    parser.add_argument("--save-template", metavar="FILE.pkl",
                        help="also write the driving motion as a LivePortrait motion template")


DEFAULT_FACE_PARTS = "head,eyes,rest"  # with face+voice: the mouth follows speech (core/drive/mix.py Split)


def add_drive_mix_arguments(parser: argparse.ArgumentParser, default: str, speech: str) -> None:
    """`--drive-mix` and `--drive-parts`: which parts of the face the driving face moves, and which the speech."""
    parser.add_argument("--drive-mix", choices=("face", "face+voice"), default=default,
                        help=f"face: the face drives everything; face+voice: the parts in --drive-parts follow the "
                             f"face, the others the speech ({speech}) through --motion, and the face eases to speech "
                             f"motion where it leaves the frame (default: {default})")
    parser.add_argument("--drive-parts", default=DEFAULT_FACE_PARTS, metavar="PARTS",
                        help="with --drive-mix face+voice: the parts the face drives, from head (pose, position, "
                             "scale), eyes, mouth, rest (brows, cheeks) (default: head,eyes,rest)")


def drive_split(args: argparse.Namespace):
    """-> (core.drive.mix.Split, None) or (None, the one-line problem); torch-free. `face` drives every part."""
    from core.drive.mix import FACE_ONLY, PARTS, Split

    if args.drive_mix == "face":
        return FACE_ONLY, None
    try:
        return Split.face_parts(args.drive_parts), None
    except ValueError as exc:
        return None, f"--drive-parts {args.drive_parts!r}: {exc}; name some of {', '.join(PARTS)}, comma-separated"


def drive_config(args: argparse.Namespace):
    """The DriveConfig the --drive-* options give (torch-free)."""
    from core.drive.config import DriveConfig

    retarget = getattr(args, "drive_retarget", None)
    return DriveConfig(relative_motion=not args.drive_absolute, region=args.drive_region,
                       driving_option=args.drive_option, multiplier=args.drive_multiplier,
                       stitching=not args.no_drive_stitching, eye_retargeting=retarget in ("eyes", "both"),
                       lip_retargeting=retarget in ("lips", "both"), normalize_lip=args.drive_normalize_lip)
