"""Lite mode in the app (issue 11): the Renderer setting, the atlas build shown as progress, then live frames,
and a label that says which renderer runs and why."""

from __future__ import annotations

import pytest

from app.engine_bridge import InputChoice
from app.settings import AppSettings, load_settings, save_settings
from tests.test_app_window import astronaut_png, dirs, drop, make_window, run_until_frames, stop  # noqa: F401


def test_renderer_setting_is_saved_and_validated(qtbot, dirs):  # noqa: F811
    w = make_window(qtbot, AppSettings(renderer="auto"))
    assert w.renderer_combo.currentText() == "auto"
    w.renderer_combo.setCurrentText("lite")
    w.close()
    saved, _ = load_settings()
    assert saved.renderer == "lite"
    save_settings(AppSettings(renderer="turbo"))
    fixed, notes = load_settings()
    assert fixed.renderer == "auto" and any("renderer='turbo'" in n for n in notes)


@pytest.mark.slow
def test_lite_mode_builds_the_atlas_with_progress_then_goes_live(qtbot, dirs, astronaut_png,  # noqa: F811
                                                                  monkeypatch):
    monkeypatch.setenv("HEADCAST_CACHE_DIR", str(dirs / "cache"))
    import dataclasses

    from app.engine_bridge import EngineBridge

    real_config = EngineBridge.session_config  # a 3x2 atlas (6 tiny frames) instead of the default 27
    monkeypatch.setattr(EngineBridge, "session_config",
                        lambda self, settings: dataclasses.replace(real_config(self, settings), atlas="3x2"))
    w = make_window(qtbot, AppSettings(camera_enabled=False, device="cpu", renderer="lite"))
    drop(w.portrait_list, [astronaut_png])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=20000)
    w.select_input(InputChoice("generator"))
    seen = []
    w.bridge.atlas_progress.connect(lambda done, total: seen.append((done, total, w.atlas_bar.isVisible())))
    run_until_frames(qtbot, w, timeout=300000)
    assert seen and seen[-1][0] == seen[-1][1] == 6  # every frame of the 3x2 grid reported
    assert any(visible for done, total, visible in seen if done < total)  # the bar showed while building
    assert not w.atlas_bar.isVisible()
    assert w.renderer_label.text() == "lite renderer chosen explicitly"
    assert type(w.bridge.session.engine.renderer).__name__ == "LiteRenderer"
    assert len(list((dirs / "cache" / "atlas").glob("*.npz"))) == 1
    stop(qtbot, w)
    seen.clear()
    run_until_frames(qtbot, w, w.preview.frames_shown + 3)  # the second start reuses the atlas: no build
    assert seen == []
    stop(qtbot, w)
    w.close()


@pytest.mark.slow
def test_default_renderer_is_auto_measured_once_and_explained(qtbot, dirs, astronaut_png,  # noqa: F811
                                                              monkeypatch):
    """A new user gets `auto`: the full renderer is timed on the first start (and remembered), the label says what
    was measured and which renderer runs, and the engine really runs that one."""
    monkeypatch.setenv("HEADCAST_CACHE_DIR", str(dirs / "cache"))
    import dataclasses

    from app.engine_bridge import EngineBridge

    real_config = EngineBridge.session_config  # if auto picks lite here: a 3x2 atlas, not the default 27 frames
    monkeypatch.setattr(EngineBridge, "session_config",
                        lambda self, settings: dataclasses.replace(real_config(self, settings), atlas="3x2"))
    w = make_window(qtbot, dataclasses.replace(AppSettings(), camera_enabled=False, device="cpu"))
    assert w.renderer_combo.currentText() == "auto"
    drop(w.portrait_list, [astronaut_png])
    qtbot.waitUntil(lambda: len(w.library) == 1, timeout=20000)
    w.select_input(InputChoice("generator"))
    said = []
    w.bridge.renderer_changed.connect(said.append)
    run_until_frames(qtbot, w, timeout=300000)
    first = w.renderer_label.text()
    assert said[0].startswith("auto: timing the full renderer on CPU") and said[-1] == first  # before, then after
    lite = type(w.bridge.session.engine.renderer).__name__ == "LiteRenderer"
    assert first.startswith("lite mode: the full renderer measured" if lite else "full renderer: measured"), first
    assert (dirs / "cache" / "renderer-speed.json").is_file()
    stop(qtbot, w)
    run_until_frames(qtbot, w, w.preview.frames_shown + 3)
    assert "remembered" in w.renderer_label.text() and "measured" not in w.renderer_label.text()
    assert (type(w.bridge.session.engine.renderer).__name__ == "LiteRenderer") == lite
    stop(qtbot, w)
    w.close()
