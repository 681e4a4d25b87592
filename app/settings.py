"""User settings: one dataclass, stored as JSON under the platform's config folder.

Why so defensive: a settings file is edited by hand, half-written by a crash, or left over from an older
version. None of that may stop the app from starting, so loading never raises; it returns defaults (for the
whole file or per field) together with warnings the window shows once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from core.atomic import atomic_path, set_aside
from core.backends import BACKENDS
from core.drive.camera import camera_index
from core.lite import RENDERERS
from core.motion.source import JOYVASA_ENCODINGS, MotionSettings

from .drive import DEFAULT_CAMERA, DRIVE_MODES, VOICE

log = logging.getLogger(__name__)

APP_NAME = "headcast"
SETTINGS_FILE = "settings.json"
MOTION_SOURCES = ("retarget", "joyvasa", "dit")
RENDERER_CHOICES = RENDERERS  # full | lite | auto (lite mode, issue 11)
AUTO_DELAY = -1.0  # audio_delay_ms value meaning "follow the measured pipeline latency"


def config_dir() -> Path:
    """`HEADCAST_CONFIG_DIR` if set (tests, portable installs), else the platform's user config folder."""
    return Path(os.environ.get("HEADCAST_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """`HEADCAST_DATA_DIR` if set, else the platform's user data folder (portrait library, crops)."""
    return Path(os.environ.get("HEADCAST_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


@dataclass
class AppSettings:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    backend: str = "eager"  # renderer network backend, one of core.backends.BACKENDS
    fps: int = 25
    output_width: int = 512
    output_height: int = 512
    motion_source: str = "retarget"  # one of MOTION_SOURCES
    # full | lite | auto. auto (the default): the full renderer is timed once on this machine (remembered) and
    # lite mode takes over where it cannot reach the frame rate: a laptop without an NVIDIA GPU is live at once
    renderer: str = "auto"
    motion_window: int = 25  # frames per generated window
    sampling_steps: int = 10
    cfg_scale: float = 2.0
    expression_gain: float = 1.0
    head_gain: float = 1.0
    joyvasa_encoding: str | None = None  # "prefix" | "fixed"; None: the checkpoint's own (published: prefix)
    audio_delay_ms: float = AUTO_DELAY  # < 0: follow the measured latency
    audio_output_enabled: bool = False
    audio_output_device: str | None = None  # a virtual audio cable, by sounddevice name
    microphone: str | None = None  # input device name; None: the system default
    camera_enabled: bool = True
    latency_budget_ms: float = 0.0  # mouth-to-frame budget the engine keeps; 0: by device (GPU 300, CPU 600)
    loop_audio_file: bool = False  # an audio-file input starts again at its end instead of stopping
    last_portrait: str | None = None
    drive_mode: str = VOICE  # "Drive with": voice | face | face+voice (app/drive.py)
    drive_camera: str = DEFAULT_CAMERA  # the driving camera, "camera:N"
    extra: dict = field(default_factory=dict)  # keys from newer versions, kept on save

    def motion_settings(self) -> MotionSettings:
        return MotionSettings(
            expression_gain=self.expression_gain,
            head_gain=self.head_gain,
            window=self.motion_window,
            steps=self.sampling_steps,
            cfg_scale=self.cfg_scale,
            joyvasa_encoding=self.joyvasa_encoding,
        )

    def validated(self) -> tuple[AppSettings, list[str]]:
        """Clamp values into their valid ranges; returns a corrected copy and what was corrected."""
        s = dataclasses.replace(self)
        notes: list[str] = []

        def clamp(name: str, lo, hi) -> None:
            value = getattr(s, name)
            fixed = min(max(value, lo), hi)
            if fixed != value:
                notes.append(f"{name}={value!r} is outside [{lo}, {hi}]; using {fixed!r}")
                setattr(s, name, fixed)

        clamp("fps", 1, 60)
        clamp("output_width", 64, 2048)
        clamp("output_height", 64, 2048)
        clamp("motion_window", 1, 250)
        clamp("sampling_steps", 1, 1000)
        clamp("cfg_scale", 0.0, 20.0)
        clamp("expression_gain", 0.0, 4.0)
        clamp("head_gain", 0.0, 4.0)
        clamp("latency_budget_ms", 0.0, 10000.0)
        if s.audio_delay_ms != AUTO_DELAY:
            clamp("audio_delay_ms", 0.0, 5000.0)
        if s.joyvasa_encoding is not None and s.joyvasa_encoding not in JOYVASA_ENCODINGS:
            notes.append(f"joyvasa_encoding={s.joyvasa_encoding!r} is unknown; using the checkpoint's own")
            s.joyvasa_encoding = None
        if s.renderer not in RENDERER_CHOICES:
            notes.append(f"renderer={s.renderer!r} is unknown; using 'auto'")
            s.renderer = "auto"
        if s.backend not in BACKENDS:
            notes.append(f"backend={s.backend!r} is unknown; using 'eager'")
            s.backend = "eager"
        if s.motion_source not in MOTION_SOURCES:
            notes.append(f"motion_source={s.motion_source!r} is unknown; using 'retarget'")
            s.motion_source = "retarget"
        if s.drive_mode not in DRIVE_MODES:
            notes.append(f"drive_mode={s.drive_mode!r} is unknown; using {VOICE!r}")
            s.drive_mode = VOICE
        if camera_index(s.drive_camera) is None:
            notes.append(f"drive_camera={s.drive_camera!r} is not 'camera:N'; using {DEFAULT_CAMERA!r}")
            s.drive_camera = DEFAULT_CAMERA
        return s, notes


def _coerce(value, default, name: str):
    """Return `value` if it has the type of the field's default (ints accepted for floats), else raise."""
    kind = type(default)
    if default is None:  # optional strings
        if value is None or isinstance(value, str):
            return value
    elif kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, kind):
        return value
    expected = kind.__name__ if default is not None else "text or null"
    raise TypeError(f"{name}: expected {expected}, got {value!r}")


def settings_from_dict(raw: dict) -> tuple[AppSettings, list[str]]:
    defaults = AppSettings()
    values: dict = {}
    warnings: list[str] = []
    names = {f.name for f in dataclasses.fields(AppSettings)} - {"extra"}
    for name in names:
        if name not in raw:
            continue
        try:
            values[name] = _coerce(raw[name], getattr(defaults, name), name)
        except TypeError as exc:
            warnings.append(f"{exc}; using the default")
    extra = {k: v for k, v in raw.items() if k not in names and k != "extra"}
    settings, notes = AppSettings(**values, extra=extra).validated()
    return settings, warnings + notes


def load_settings(path: Path | None = None) -> tuple[AppSettings, list[str]]:
    """Read the settings file. Never raises: a missing file gives defaults silently, a corrupt one gives
    defaults and a warning (the bad file is kept next to it as `settings.json.bad` for inspection)."""
    path = path or config_dir() / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AppSettings(), []
    except OSError as exc:
        return AppSettings(), [f"Could not read settings {path}: {exc}. Using defaults."]
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("the top level is not a JSON object")
    except ValueError as exc:  # the parser's words ("Expecting property name ...") go to the log, not the window
        log.warning("settings file %s unreadable: %s", path, exc)
        kept = f" The damaged file was kept as {path.name}.bad." if set_aside(path) else ""
        return AppSettings(), [f"Settings file {path} is corrupt (not valid settings, perhaps edited by hand or cut "
                               f"short by a crash); Headcast started with the default settings.{kept}"]
    settings, warnings = settings_from_dict(raw)
    return settings, [f"Settings {path}: {w}" for w in warnings]


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write atomically through `core.atomic`, so a crash never leaves half a file."""
    path = path or config_dir() / SETTINGS_FILE
    data = dataclasses.asdict(settings)
    extra = data.pop("extra")
    data = {**extra, **data}
    with atomic_path(path, mode=0o600) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
