"""Named looks: the built-in presets people ask for, and the user's own, kept as JSON in the config folder.

Why built-ins: "make it look at the camera", "the head moves too much", "it looks bored" are the requests;
each preset is a handful of control values plus motion gains (core/look.py), so it applies to any portrait and
any motion source. User presets live in one file, `look_presets.json` ({name: {control: value}}), written
atomically (core/atomic.py); a broken file never stops anything: it is reported and the built-ins still work.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from core.atomic import atomic_path
from core.look import Look, LookError

log = logging.getLogger(__name__)

PRESETS_FILE = "look_presets.json"
BUILTIN_PRESETS: dict[str, Look] = {
    # eyes on the camera while the head moves (blinks kept: the lids are untouched), head motion a bit calmer
    "gaze-lock": Look(gaze_lock=1.0, head_motion=0.8),
    "calm": Look(head_motion=0.5, expression_motion=0.9),
    "lively": Look(head_motion=1.6, expression_motion=1.2),
    "smile": Look(smile=0.35, eyebrow=3.0),  # a gentle smile: a third of the editor's full smile, brows relaxed
}


def config_dir() -> Path:
    """`HEADCAST_CONFIG_DIR` if set (tests, portable installs), else the platform's user config folder (the
    same rule as the app's settings, app/settings.py)."""
    env = os.environ.get("HEADCAST_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("headcast"))


class PresetStore:
    """Built-in presets plus the user's file. `problems` lists what could not be read (one sentence each)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.path = Path(folder or config_dir()) / PRESETS_FILE
        self.problems: list[str] = []
        self.user: dict[str, Look] = self._read()

    def _read(self) -> dict[str, Look]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            self.problems.append(f"{self.path} cannot be read ({exc}); your saved looks are not available. Fix or "
                                 "delete the file.")
            return {}
        # lenient per value (an older or hand-edited file): unknown names dropped, values clamped to their range
        return {str(name): Look.from_dict(values if isinstance(values, dict) else {}, strict=False)
                for name, values in raw.items()}

    def names(self) -> list[str]:
        return list(BUILTIN_PRESETS) + [n for n in self.user if n not in BUILTIN_PRESETS]

    def get(self, name: str) -> Look:
        if name in BUILTIN_PRESETS:
            return BUILTIN_PRESETS[name]
        if name in self.user:
            return self.user[name]
        raise LookError(f"unknown look preset {name!r}; known: {', '.join(self.names())}")

    def save(self, name: str, look: Look) -> Path:
        """Keep `look` under `name` (atomic write of the whole file; a built-in name cannot be replaced)."""
        name = name.strip()
        if not name:
            raise LookError("a preset needs a name")
        if name in BUILTIN_PRESETS:
            raise LookError(f"{name!r} is a built-in preset; save your look under another name")
        user = dict(self.user)
        user[name] = look
        self._write(user)
        self.user = user
        return self.path

    def delete(self, name: str) -> None:
        if name not in self.user:
            raise LookError(f"no saved look preset called {name!r}")
        user = {k: v for k, v in self.user.items() if k != name}
        self._write(user)
        self.user = user

    def _write(self, user: dict[str, Look]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({k: v.changed() for k, v in user.items()}, indent=2) + "\n"
        with atomic_path(self.path, suffix=".json") as tmp:
            Path(tmp).write_text(text, encoding="utf-8")


def resolve_look(look_text: str | None, preset: str | None, store: PresetStore | None = None) -> Look:
    """`--preset NAME` then `--look a=1,b=2` on top of it (the explicit values win). Raises LookError."""
    base = Look()
    if preset:
        base = (store or PresetStore()).get(preset)
    return Look.parse(look_text, base=base) if look_text else base
