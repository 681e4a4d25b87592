"""`--look` / `--preset` on `python -m core render` and `live`, and the preset store (tiny stand-in weights)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.__main__ import main as core_main
from core.audio.io import save_wav
from core.look import BY_NAME, Look, LookError
from core.look_presets import BUILTIN_PRESETS, PresetStore, resolve_look

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut, speech_16k):
    folder = tmp_path_factory.mktemp("look_cli")
    png = folder / "astronaut.png"
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    wav = folder / "speech.wav"
    save_wav(wav, speech_16k[16000:16000 + 12800], 16000)  # 0.8 s of speech: 20 frames
    return png, wav


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


@pytest.fixture(scope="module")
def renders(inputs, tmp_path_factory):
    png, wav = inputs
    folder = tmp_path_factory.mktemp("renders")
    out = {}
    for name, extra in (("neutral", []), ("neutral2", []), ("smile", ["--look", "smile=1"]),
                        ("gaze-lock", ["--preset", "gaze-lock"])):
        path = folder / f"{name}.mp4"
        assert core_main(["render", "--portrait", str(png), "--audio", str(wav), "--out", str(path),
                          "--synthetic-weights", "tiny", *extra]) == 0
        out[name] = frames_of(path).astype(np.int16)
    return out


def test_render_is_repeatable_without_a_look(renders):
    assert np.array_equal(renders["neutral"], renders["neutral2"])


@pytest.mark.parametrize("name", ["smile", "gaze-lock"])
def test_look_and_preset_change_the_frames(renders, name):
    assert renders[name].shape == renders["neutral"].shape
    diff = np.abs(renders[name] - renders["neutral"]).mean(axis=(1, 2, 3))
    assert (diff > 0.05).all(), diff  # every frame, from the first on (no easing in a file)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HEADCAST_CONFIG_DIR": "/nonexistent"},
                          timeout=120)


@pytest.mark.parametrize("command", ["render", "live"])
@pytest.mark.parametrize("look, words", [
    (["--look", "smile=9"], "smile=9 is outside its range -0.3 .. 1.3"),
    (["--look", "grin=1"], "unknown look control 'grin'"),
    (["--look", "smile"], "not NAME=VALUE"),
    (["--preset", "sleepy"], "unknown look preset 'sleepy'"),
])
def test_bad_look_is_one_line_before_torch(inputs, command, look, words):
    png, wav = inputs
    extra = ["--out", "/tmp/never.mp4", "--audio", str(wav)] if command == "render" else ["--input", "test"]
    r = run_cli(command, "--portrait", str(png), *extra, *look)
    assert r.returncode == 2
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_help_names_every_control_and_preset():
    r = run_cli("render", "--help")
    text = " ".join(r.stdout.split())
    for name in BY_NAME:
        assert name in text
    for name in BUILTIN_PRESETS:
        assert name in text


def test_look_text_accepts_official_names_and_own():
    look = Look.parse("eyeball_direction_x=-10, smile=0.5, eye_ratio=own")
    assert look.gaze_x == -10 and look.smile == 0.5 and look.eye_ratio is None
    assert Look.parse("yaw=5", base=BUILTIN_PRESETS["calm"]).head_motion == BUILTIN_PRESETS["calm"].head_motion


def test_presets_save_reload_and_protect_builtins(tmp_path):
    store = PresetStore(tmp_path)
    assert store.names()[:4] == list(BUILTIN_PRESETS)
    store.save("interview", Look(smile=0.2, head_motion=0.7))
    again = PresetStore(tmp_path)
    assert again.get("interview") == Look(smile=0.2, head_motion=0.7)
    assert json.loads((tmp_path / "look_presets.json").read_text()) == {"interview": {"smile": 0.2,
                                                                                      "head_motion": 0.7}}
    with pytest.raises(LookError, match="built-in"):
        again.save("calm", Look())
    again.delete("interview")
    assert PresetStore(tmp_path).user == {}
    assert resolve_look("smile=0.1", "gaze-lock", again) == Look(gaze_lock=1.0, head_motion=0.8, smile=0.1)


def test_a_broken_preset_file_is_reported_and_kept(tmp_path):
    (tmp_path / "look_presets.json").write_text("{not json")
    store = PresetStore(tmp_path)
    assert store.user == {} and "cannot be read" in store.problems[0]
    assert store.get("smile") == BUILTIN_PRESETS["smile"]
    assert (tmp_path / "look_presets.json").read_text() == "{not json"  # nothing the user wrote is lost


def test_stored_values_out_of_range_are_clamped_not_fatal():
    look = Look.from_dict({"smile": 7, "nonsense": 1, "yaw": "x"}, strict=False)
    assert look == Look(smile=1.3)


def test_live_takes_the_look_from_the_first_frame(inputs, tmp_path, monkeypatch):
    from core.session import LiveSession

    seen = []
    real = LiveSession._apply_look

    def spy(renderer, look, ease):
        seen.append((look, ease))
        real(renderer, look, ease)

    monkeypatch.setattr(LiveSession, "_apply_look", staticmethod(spy))
    png, wav = inputs
    assert core_main(["live", "--portrait", str(png), "--input", str(wav), "--seconds", "1", "--quiet",
                      "--synthetic-weights", "tiny", "--renderer", "full", "--preset", "calm",
                      "--look", "smile=1"]) == 0
    assert seen[0] == (Look(head_motion=0.5, expression_motion=0.9, smile=1.0), False)
