"""The look in lite mode: pose, zoom, gains and the eye / lip ratios work; the editor's expression controls are
named as needing the full renderer; the atlas always holds the bare face (a look never leaks into it)."""

from __future__ import annotations

import numpy as np
import pytest

from core import layout
from core.bench.lite import responsive_models
from core.device import pick_device
from core.lite.atlas import AtlasSpec, AtlasStore
from core.lite.renderer import LiteRenderer
from core.liveportrait import LivePortraitConfig
from core.look import Look
from core.look_live import EASE_FRAMES
from core.render import Renderer

GRID = AtlasSpec(lip_levels=4, eye_levels=2)


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    full = Renderer(responsive_models(LivePortraitConfig.tiny()), pick_device("cpu"))
    full.look.set(Look(smile=1.3, yaw=20.0), ease=False)  # a look left on the full renderer by a full-mode run
    return LiteRenderer(full, GRID, AtlasStore(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def portrait(lite, astronaut):
    return lite.prepare(astronaut, "astronaut")


def render(lite, portrait, look: Look, n: int = 1) -> np.ndarray:
    lite.look.set(look, ease=False)
    lite._ratio_now = None
    return lite.render(portrait, layout.neutral(n)).astype(np.int16).copy()


def test_atlas_holds_the_bare_face(lite, portrait):
    """The atlas is built by the full renderer without its look: rest frame == the full renderer's bare frame."""
    import torch

    full = lite.full
    bare = full.composite(portrait.base, full.render_faces(portrait.base, torch.zeros(1, layout.MOTION_DIM),
                                                           look=False))[0].numpy().astype(np.int16)
    assert np.abs(render(lite, portrait, Look())[0] - bare).max() <= 1


def test_pose_zoom_and_ratios_change_lite_frames(lite, portrait):
    rest = render(lite, portrait, Look())
    for look in (Look(roll=10.0), Look(mov_z=1.15), Look(lip_ratio=0.5, eye_ratio=0.0)):
        frames = render(lite, portrait, look, n=EASE_FRAMES + 1)
        assert np.abs(frames[-1] - rest[0]).mean() > 0.3, look.describe()
        assert lite.look_note(look) is None


def test_expression_controls_are_named_not_half_shown(lite, portrait):
    rest = render(lite, portrait, Look())
    assert np.array_equal(render(lite, portrait, Look(smile=1.0, gaze_x=10.0))[0], rest[0])
    note = lite.look_note(Look(smile=1.0, gaze_x=10.0, yaw=5.0))
    assert note.startswith("lite mode cannot show smile, gaze_x:") and "full renderer" in note


def test_ratio_changes_ease_in_lite_mode(lite, portrait):
    render(lite, portrait, Look())
    lite.look.set(Look(lip_ratio=0.55))
    frames = lite.render(portrait, layout.neutral(EASE_FRAMES + 2)).astype(np.int16)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    total = np.abs(frames[-1] - frames[0]).mean()
    assert total > 0.3 and steps.max() < 0.6 * total  # several steps, not one cut
