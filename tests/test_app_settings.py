"""Settings persistence: round trip, corrupt files, wrong types, atomic writes."""

from __future__ import annotations

import json

from app.settings import AUTO_DELAY, AppSettings, config_dir, load_settings, save_settings


def test_round_trip(tmp_path):
    s = AppSettings(device="cpu", fps=30, output_width=1280, output_height=720, motion_source="dit",
                    motion_window=50, sampling_steps=4, cfg_scale=1.5, expression_gain=1.3, head_gain=0.4,
                    audio_delay_ms=180.0, audio_output_enabled=True, audio_output_device="Cable",
                    microphone="USB mic", camera_enabled=False, last_portrait="/x/me.png")
    path = save_settings(s, tmp_path / "settings.json")
    got, warnings = load_settings(path)
    assert warnings == []
    assert got == s
    m = got.motion_settings()
    assert (m.window, m.steps, m.cfg_scale, m.expression_gain, m.head_gain) == (50, 4, 1.5, 1.3, 0.4)
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp files left behind


def test_missing_file_gives_defaults_silently(tmp_path):
    assert load_settings(tmp_path / "nope.json") == (AppSettings(), [])


def test_corrupt_file_gives_defaults_and_a_warning(tmp_path, caplog):
    path = tmp_path / "settings.json"
    path.write_text('{"fps": 30, "device": "cu')  # truncated by a crash
    got, warnings = load_settings(path)
    assert got == AppSettings()
    assert len(warnings) == 1 and "corrupt" in warnings[0] and str(path) in warnings[0]
    assert (tmp_path / "settings.json.bad").read_text().startswith('{"fps": 30')
    path.write_text("[1, 2, 3]")
    got, warnings = load_settings(path)
    # the window gets words; the parser's detail goes to the log
    assert got == AppSettings() and "corrupt (not valid settings" in warnings[0] and "JSON" not in warnings[0]
    assert "not a JSON object" in caplog.text


def test_bad_fields_fall_back_one_by_one(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"fps": "fast", "head_gain": 2, "motion_source": "magic", "sampling_steps": 0,
                                "camera_enabled": "yes", "future_option": [1]}))
    got, warnings = load_settings(path)
    assert got.fps == 25 and got.camera_enabled is True  # wrong types: defaults
    assert got.head_gain == 2.0 and isinstance(got.head_gain, float)  # ints accepted for floats
    assert got.motion_source == "retarget" and got.sampling_steps == 1  # unknown / out of range: fixed
    text = "\n".join(warnings)
    for name in ("fps", "camera_enabled", "motion_source", "sampling_steps"):
        assert name in text
    save_settings(got, path)  # unknown keys from a newer version survive a save
    assert json.loads(path.read_text())["future_option"] == [1]
    assert got.audio_delay_ms == AUTO_DELAY


def test_config_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    save_settings(AppSettings(fps=12))
    assert (tmp_path / "cfg" / "settings.json").is_file() and config_dir() == tmp_path / "cfg"
    assert load_settings()[0].fps == 12


def test_joyvasa_encoding_setting_reaches_the_motion_settings():
    from app.settings import settings_from_dict

    s, warnings = settings_from_dict({"joyvasa_encoding": "fixed"})
    assert s.motion_settings().joyvasa_encoding == "fixed" and warnings == []
    s, warnings = settings_from_dict({})
    assert s.motion_settings().joyvasa_encoding is None  # the checkpoint's own (published weights: prefix)
    s, warnings = settings_from_dict({"joyvasa_encoding": "sinus"})
    assert s.joyvasa_encoding is None and any("joyvasa_encoding='sinus' is unknown" in w for w in warnings)
