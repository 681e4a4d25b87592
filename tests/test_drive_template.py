"""Motion templates: LivePortrait's `.pkl` layout both ways, replay equal to driving with the video, and a loader
that never executes what a pickle asks for."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from core.__main__ import main as core_main
from core.drive.config import DriveConfig
from core.drive.keypoints import Driver
from core.drive.take import DrivingTake
from core.drive.template import TemplateError, load_template, save_template
from tests.test_drive_offline import face_frames, portrait_png, write_video  # noqa: F401  (fixture)
from tests.test_drive_parity import _official_motion, _source, fx, mlps  # noqa: F401  (fixtures)


def _official_dict(data) -> dict:
    """The template the official `execute` dumped, rebuilt from the fixture in the official layout."""
    n = data["template/R"].shape[0]
    keys = ("scale", "R", "exp", "t", "kp", "x_s")
    return {"n_frames": n, "output_fps": int(data["template/output_fps"]),
            "motion": [{k: data[f"template/{k}"][i : i + 1] for k in keys} for i in range(n)],
            "c_eyes_lst": [data["template/c_eyes"][i : i + 1] for i in range(n)],
            "c_lip_lst": [data["template/c_lip"][i : i + 1] for i in range(n)]}


def test_official_template_loads_and_drives_like_the_official_execute(fx, mlps, tmp_path):  # noqa: F811
    path = tmp_path / "official.pkl"
    path.write_bytes(pickle.dumps(_official_dict(fx)))  # as the official `dump` writes it
    take = load_template(path)
    assert len(take) == 12 and take.present.all()
    driver = Driver(_source(fx), mlps, DriveConfig())
    np.testing.assert_allclose(driver.keypoints(take.motion).numpy(), fx["x_d/all-stitched"], atol=1e-5, rtol=0)


def test_saved_template_has_the_official_layout_and_round_trips(fx, tmp_path):  # noqa: F811
    motion = _official_motion(fx)
    present = np.ones(len(motion), bool)
    present[4] = False
    path = save_template(DrivingTake(motion, present), tmp_path / "t.pkl")
    raw = pickle.loads(path.read_bytes())  # what the official `load` does
    official_top, official_motion = str(fx["template/keys"]).split("][")
    assert set(ast.literal_eval(official_top + "]")) <= set(raw)
    assert sorted(raw["motion"][0]) == ast.literal_eval("[" + official_motion)
    assert raw["n_frames"] == 12 and raw["output_fps"] == 25
    assert raw["motion"][3]["R"].shape == (1, 3, 3) and raw["motion"][3]["R"].dtype == np.float32
    assert raw["c_eyes_lst"][0].shape == (1, 2) and raw["c_lip_lst"][0].shape == (1, 1)
    back = load_template(path)
    for k in ("scale", "R", "exp", "t", "kp", "x_s", "c_eyes", "c_lip"):
        assert torch.equal(getattr(back.motion, k), getattr(motion, k)), k
    assert back.present.tolist() == present.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pkl"]  # written atomically


def test_template_at_30_fps_plays_on_the_25_fps_timeline(fx, tmp_path):  # noqa: F811
    d = _official_dict(fx)
    d["output_fps"] = 30  # 12 frames at 30 fps = 0.4 s = 10 frames at 25 fps
    path = tmp_path / "t30.pkl"
    path.write_bytes(pickle.dumps(d))
    take = load_template(path)
    assert len(take) == 10 and take.fps == 25
    idx = [k * 30 // 25 for k in range(10)]
    assert torch.equal(take.motion.exp, torch.from_numpy(fx["template/exp"][idx]))


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_loading_never_executes_code(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"n_frames": 1, "motion": [_Evil(str(target))], "c_eyes_lst": [], "c_lip_lst": []}))
    with pytest.raises(TemplateError, match="refusing to load"):
        load_template(path)
    assert not target.exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"not a pickle", "not a LivePortrait motion template"),
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({"motion": [{"scale": np.ones((1, 1))}], "c_eyes_lst": [np.ones((1, 2))],
                   "c_lip_lst": [np.ones((1, 1))]}), "has no 'R'"),
])
def test_bad_templates_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(TemplateError, match=message):
        load_template(path)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.mark.slow
def test_template_recorded_from_a_video_replays_to_the_same_frames(tmp_path, portrait_png, astronaut,  # noqa: F811
                                                                   capsys):
    drive = write_video(tmp_path / "me.mp4", face_frames(astronaut, 20, missing=range(6, 14)), 25)
    video_out, template, replay_out = tmp_path / "a.mp4", tmp_path / "me.pkl", tmp_path / "b.mp4"
    common = ["--synthetic-weights", "tiny", "--portrait", str(portrait_png)]
    assert core_main(["render", *common, "--drive", str(drive), "--out", str(video_out),
                      "--save-template", str(template)]) == 0
    assert core_main(["render", *common, "--drive", str(template), "--out", str(replay_out)]) == 0
    assert "carries no audio" in capsys.readouterr().err
    a, b = _frames(video_out), _frames(replay_out)
    assert len(a) == len(b) == 20
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert load_template(template).present.sum() == 12  # the missing faces travel with the template


def test_bad_template_on_the_command_line_is_one_line(tmp_path, portrait_png, capsys):  # noqa: F811
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"junk")
    assert core_main(["render", "--portrait", str(portrait_png), "--drive", str(bad), "--out",
                      str(tmp_path / "o.mp4"), "--synthetic-weights", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "not a LivePortrait motion template" in err[-1]
