"""The look: LivePortrait's portrait-editor controls (smile, wink, brows, gaze, lips, head pose, move, eye and lip
opening) as plain values, and what they do to a portrait's keypoints.

Why these controls and these numbers: LivePortrait's own editor (its Gradio app's image retargeting, commit
1986663b) defines them, and users know its sliders. Every control name below maps to one official slider, with
the official range, and its effect is the official one, read from that code and re-derived here:

* expression controls add fixed multiples of the control to single coordinates of the portrait's expression
  deformation (21 keypoints x (x, y, z)); some use other factors for negative values (`_EXPRESSION_TABLE`);
* pitch / yaw / roll add degrees to the portrait's own head angles; `mov_z` multiplies the keypoint scale;
  `mov_x` / `mov_y` shift one expression coordinate (keypoint 5; the editor negates `mov_x`);
* `eye_ratio` / `lip_ratio` ask the eye / lip retargeting MLPs for the keypoint delta that opens the eyes /
  mouth that far (LivePortrait's ratio: eyelid gap over eye width, lip gap over mouth width), given the
  portrait's own ratios; None means "the portrait's own" (the editor skips the MLP when the slider still shows
  the portrait's ratio rounded to 2 decimals, and so does `retarget_deltas`).

`edit_keypoints` reproduces the editor's keypoints exactly (parity-tested against the official code). The live
path (core/look_live.py) applies the same values on top of any motion by folding them into the motion rows
(core/layout.py) plus the retargeting deltas; the one place it differs on purpose is the editor's translation,
which adds tz to every keypoint's z where the animation pipeline (and Headcast's renderer) never uses tz: a
zero look must render the portrait unchanged.

Beyond the editor, a look carries motion gains (head and expression motion, how much of the motion source's
movement shows) and `gaze_lock` (eyes kept on the camera while the head moves): what presets are made of.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from core import layout

if TYPE_CHECKING:  # torch only where keypoints are computed: `--look` errors must come back in milliseconds
    import torch
    from torch import nn


class LookError(ValueError):
    """A look given as text or JSON names an unknown control or a value outside its range."""


@dataclass(frozen=True)
class Control:
    """One slider: Headcast's name, the official parameter it mirrors, range, neutral value, unit, label."""

    name: str
    official: str
    minimum: float
    maximum: float
    neutral: float
    step: float
    unit: str
    label: str
    lite: bool = False  # lite mode (atlas renderer) can show it
    optional: bool = False  # None is allowed and means "the portrait's own" (the ratios)


# Ranges, steps and neutral values are the official sliders' (app.py of the official repository).
CONTROLS: tuple[Control, ...] = (
    Control("eye_ratio", "input_eye_ratio", 0.0, 0.8, 0.0, 0.01, "ratio", "Eyes open", lite=True, optional=True),
    Control("lip_ratio", "input_lip_ratio", 0.0, 0.8, 0.0, 0.01, "ratio", "Mouth open", lite=True, optional=True),
    Control("pitch", "input_head_pitch_variation", -15.0, 15.0, 0.0, 1.0, "deg", "Head pitch", lite=True),
    Control("yaw", "input_head_yaw_variation", -25.0, 25.0, 0.0, 1.0, "deg", "Head yaw", lite=True),
    Control("roll", "input_head_roll_variation", -15.0, 15.0, 0.0, 1.0, "deg", "Head roll", lite=True),
    Control("mov_x", "mov_x", -0.19, 0.19, 0.0, 0.01, "kp", "Move x"),
    Control("mov_y", "mov_y", -0.19, 0.19, 0.0, 0.01, "kp", "Move y"),
    Control("mov_z", "mov_z", 0.9, 1.2, 1.0, 0.01, "x", "Move z (zoom)", lite=True),
    Control("lip_pout", "lip_variation_zero", -0.09, 0.09, 0.0, 0.01, "", "Pout"),
    Control("lip_purse", "lip_variation_one", -20.0, 15.0, 0.0, 0.01, "", "Purse"),
    Control("lip_grin", "lip_variation_two", 0.0, 15.0, 0.0, 0.01, "", "Grin"),
    Control("lip_open", "lip_variation_three", -90.0, 120.0, 0.0, 1.0, "", "Lips close/open"),
    Control("smile", "smile", -0.3, 1.3, 0.0, 0.01, "", "Smile"),
    Control("wink", "wink", 0.0, 39.0, 0.0, 0.01, "", "Wink"),
    Control("eyebrow", "eyebrow", -30.0, 30.0, 0.0, 0.01, "", "Eyebrow"),
    Control("gaze_x", "eyeball_direction_x", -30.0, 30.0, 0.0, 0.01, "", "Gaze horizontal"),
    Control("gaze_y", "eyeball_direction_y", -63.0, 63.0, 0.0, 0.01, "", "Gaze vertical"),
)
# Headcast's own additions: how much of the motion source's movement shows, and the camera gaze lock.
GAINS: tuple[Control, ...] = (
    Control("head_motion", "-", 0.0, 3.0, 1.0, 0.05, "x", "Head motion", lite=True),
    Control("expression_motion", "-", 0.0, 3.0, 1.0, 0.05, "x", "Expression motion", lite=True),
    Control("gaze_lock", "-", 0.0, 1.0, 0.0, 1.0, "on/off", "Gaze lock"),
)
ALL_CONTROLS = CONTROLS + GAINS
BY_NAME = {c.name: c for c in ALL_CONTROLS}
ALIASES = {c.official: c.name for c in CONTROLS if c.official != c.name}
FULL_ONLY = tuple(c.name for c in ALL_CONTROLS if not c.lite)

# (control, keypoint, axis, factor for values > 0, factor for values <= 0): the editor's expression edits.
# Most factors are the same on both sides; gaze_x and eyebrow take other keypoints / factors below zero.
_EXPRESSION_TABLE: tuple[tuple[str, int, int, float, float], ...] = (
    ("gaze_x", 11, 0, 0.0007, 0.001), ("gaze_x", 15, 0, 0.001, 0.0007),
    # gaze_y moves both eyeballs up/down and half-closes the lids with it ("blink" = -gaze_y / 2)
    ("gaze_y", 11, 1, -0.001, -0.001), ("gaze_y", 15, 1, -0.001, -0.001),
    ("gaze_y", 11, 1, 0.0005, 0.0005), ("gaze_y", 13, 1, -0.00015, -0.00015),
    ("gaze_y", 15, 1, 0.0005, 0.0005), ("gaze_y", 16, 1, -0.00015, -0.00015),
    ("smile", 20, 1, -0.01, -0.01), ("smile", 14, 1, -0.02, -0.02), ("smile", 17, 1, 0.0065, 0.0065),
    ("smile", 17, 2, 0.003, 0.003), ("smile", 13, 1, -0.00275, -0.00275), ("smile", 16, 1, -0.00275, -0.00275),
    ("smile", 3, 1, -0.0035, -0.0035), ("smile", 7, 1, -0.0035, -0.0035),
    ("wink", 11, 1, 0.001, 0.001), ("wink", 13, 1, -0.0003, -0.0003), ("wink", 17, 0, 0.0003, 0.0003),
    ("wink", 17, 1, 0.0003, 0.0003), ("wink", 3, 1, -0.0003, -0.0003),
    ("eyebrow", 1, 1, 0.001, 0.0003), ("eyebrow", 2, 1, -0.001, -0.0003),
    ("eyebrow", 1, 0, 0.0, -0.001), ("eyebrow", 2, 0, 0.0, 0.001),
    ("lip_pout", 19, 0, 1.0, 1.0),
    ("lip_purse", 14, 1, 0.001, 0.001), ("lip_purse", 3, 1, -0.0005, -0.0005), ("lip_purse", 7, 1, -0.0005, -0.0005),
    ("lip_purse", 17, 2, -0.0005, -0.0005),
    ("lip_grin", 20, 2, -0.001, -0.001), ("lip_grin", 20, 1, -0.001, -0.001), ("lip_grin", 14, 1, -0.001, -0.001),
    ("lip_open", 19, 1, 0.001, 0.001), ("lip_open", 19, 2, 0.0001, 0.0001), ("lip_open", 17, 1, -0.0001, -0.0001),
    ("mov_x", 5, 0, -1.0, -1.0),  # the editor moves keypoint 5 by -mov_x
    ("mov_y", 5, 1, 1.0, 1.0),
)
EXPRESSION_CONTROLS = tuple(dict.fromkeys(row[0] for row in _EXPRESSION_TABLE))


@dataclass(frozen=True)
class Look:
    """Control values; the defaults are the neutral look (the portrait as it is, motion at full strength)."""

    eye_ratio: float | None = None
    lip_ratio: float | None = None
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    mov_x: float = 0.0
    mov_y: float = 0.0
    mov_z: float = 1.0
    lip_pout: float = 0.0
    lip_purse: float = 0.0
    lip_grin: float = 0.0
    lip_open: float = 0.0
    smile: float = 0.0
    wink: float = 0.0
    eyebrow: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    head_motion: float = 1.0
    expression_motion: float = 1.0
    gaze_lock: float = 0.0  # 0 off, 1 on (a float so that it eases like the rest)

    # ---------------------------------------------------------------- construction and checks
    @classmethod
    def from_dict(cls, values: dict, strict: bool = True) -> Look:
        """From {name: value} (official names accepted). strict: unknown names and out-of-range values raise
        LookError; otherwise (a stored look from an older version) they are dropped / clamped."""
        out: dict[str, float | None] = {}
        for key, value in values.items():
            name = ALIASES.get(key, key)
            control = BY_NAME.get(name)
            if control is None:
                if strict:
                    raise LookError(f"unknown look control {key!r}; known: {', '.join(BY_NAME)}")
                continue
            if value is None and control.optional:
                out[name] = None
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                if strict:
                    raise LookError(f"look control {name}: {value!r} is not a number") from None
                continue
            if not math.isfinite(number):
                if strict:
                    raise LookError(f"look control {name}: {value!r} is not a finite number")
                continue
            if not control.minimum <= number <= control.maximum:
                if strict:
                    raise LookError(f"look control {name}={number:g} is outside its range {control.minimum:g} .. "
                                    f"{control.maximum:g}{' ' + control.unit if control.unit else ''}")
                number = min(max(number, control.minimum), control.maximum)
            out[name] = number
        return cls(**out)

    @classmethod
    def parse(cls, text: str, base: Look | None = None) -> Look:
        """CLI form 'smile=0.5,gaze_x=-0.2' (spaces allowed; 'eye_ratio=own' for the portrait's own), applied
        on top of `base` (a preset). Raises LookError naming the bad item."""
        values: dict[str, float | None] = {}
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep or not value.strip():
                raise LookError(f"look item {item!r} is not NAME=VALUE (e.g. smile=0.5,gaze_x=-0.2)")
            value = value.strip()
            values[name.strip()] = None if value.lower() in ("own", "none") else value
        merged = (base or cls()).to_dict()
        merged.update(cls.from_dict(values).to_dict(only=set(ALIASES.get(k, k) for k in values)))
        return cls.from_dict(merged)

    def to_dict(self, only: set[str] | None = None) -> dict[str, float | None]:
        d = asdict(self)
        return {k: v for k, v in d.items() if only is None or k in only}

    def changed(self) -> dict[str, float | None]:
        """Only the controls that differ from neutral (what a preset file or the library stores)."""
        neutral = Look()
        return {k: v for k, v in self.to_dict().items() if v != getattr(neutral, k)}

    def with_value(self, name: str, value: float | None) -> Look:
        return replace(self, **{name: value})

    def is_neutral(self) -> bool:
        return not self.changed()

    def full_only(self) -> list[str]:
        """The controls set here that need the full renderer (lite mode cannot show them)."""
        return [name for name in self.changed() if name in FULL_ONLY]

    def lite_note(self) -> str | None:
        """One sentence naming the controls set here that lite mode cannot show, or None."""
        missing = self.full_only()
        if not missing:
            return None
        return (f"lite mode cannot show {', '.join(missing)}: those need the full renderer (--renderer full); "
                "eye/lip ratio, head pitch/yaw/roll, zoom (mov_z) and the motion gains work here")

    def describe(self) -> str:
        items = self.changed()
        return ", ".join(f"{k}={'own' if v is None else f'{v:g}'}" for k, v in items.items()) or "neutral"


LOOK_FIELDS = tuple(f.name for f in fields(Look))
assert LOOK_FIELDS == tuple(c.name for c in ALL_CONTROLS), "Look fields and CONTROLS must list the same names"


def expression_offset(look: Look) -> np.ndarray:
    """The editor's expression edit (21, 3) float64 for this look: a sum of fixed multiples of the controls."""
    out = np.zeros((layout.N_KEYPOINTS, 3), np.float64)
    for name, kp, axis, positive, negative in _EXPRESSION_TABLE:
        value = getattr(look, name)
        if value:
            out[kp, axis] += value * (positive if value > 0 else negative)
    return out


def pose_offset(look: Look) -> np.ndarray:
    """(pitch, yaw, roll) degrees the look adds to the portrait's own head angles."""
    return np.array((look.pitch, look.yaw, look.roll), np.float64)


@dataclass(frozen=True)
class SourceRatios:
    """The portrait's own eye-open (left, right) and lip-open ratios, from its 203 landmarks (LivePortrait's
    definition; core.motion.retarget_source.source_ratios computes them, with defaults without landmarks)."""

    eye_left: float
    eye_right: float
    lip: float

    @classmethod
    def of(cls, portrait) -> SourceRatios:
        from core.motion.retarget_source import RetargetConfig, source_ratios

        lip, (left, right) = source_ratios(portrait, RetargetConfig())
        return cls(left, right, lip)

    @property
    def shown_eye(self) -> float:
        """What the editor's eye slider shows for the portrait: the mean of both eyes, 2 decimals."""
        return round((self.eye_left + self.eye_right) / 2, 2)

    @property
    def shown_lip(self) -> float:
        return round(self.lip, 2)


def retarget_deltas(eye_mlp: nn.Module, lip_mlp: nn.Module, x_s: torch.Tensor, ratios: SourceRatios,
                    look: Look) -> torch.Tensor:
    """Eye + lip retargeting delta (1, 21, 3) on the device of x_s: the MLP outputs for the look's ratios, each
    only when set and different from what the editor shows for the portrait (then it is 0)."""
    import torch

    from core.liveportrait.keypoints import retarget_eye, retarget_lip

    with torch.inference_mode():
        delta = torch.zeros_like(x_s)
        if look.eye_ratio is not None and look.eye_ratio != ratios.shown_eye:
            cond = torch.tensor([[ratios.eye_left, ratios.eye_right, float(look.eye_ratio)]], dtype=torch.float32,
                                device=x_s.device)
            delta = delta + retarget_eye(eye_mlp, x_s, cond)
        if look.lip_ratio is not None and look.lip_ratio != ratios.shown_lip:
            cond = torch.tensor([[ratios.lip, float(look.lip_ratio)]], dtype=torch.float32, device=x_s.device)
            delta = delta + retarget_lip(lip_mlp, x_s, cond)
        return delta


def edit_keypoints(source, look: Look, stitching: nn.Module | None, eye_mlp: nn.Module, lip_mlp: nn.Module,
                   ratios: SourceRatios) -> torch.Tensor:
    """LivePortrait's editor, exactly: the driving keypoints (1, 21, 3) for the portrait `source` (anything
    with kp, exp (1, 21, 3), scale (1, 1), t (1, 3), angles (1, 3) degrees and x_s: a PreparedPortrait) edited
    by `look`. Includes the editor's tz on z (see the module docstring); `stitching` None skips stitching."""
    import torch

    from core.geometry import rotation_matrix
    from core.liveportrait.keypoints import stitch

    with torch.inference_mode():
        kp, exp = source.kp.float(), source.exp.float()
        angles = source.angles.float() + torch.as_tensor(pose_offset(look), dtype=torch.float32, device=kp.device)
        rot = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        exp = exp + torch.as_tensor(expression_offset(look), dtype=torch.float32, device=kp.device)
        x_d = look.mov_z * source.scale.reshape(1, 1, 1) * (kp @ rot + exp) + source.t.reshape(1, 1, 3)
        x_d = x_d + retarget_deltas(eye_mlp, lip_mlp, source.x_s, ratios, look)
        if stitching is not None:
            x_d = stitch(stitching, source.x_s, x_d)
        return x_d
