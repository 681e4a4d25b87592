"""Issue 21: simple mistakes are named before any network weights load (no face in the photo, weight files
missing), messages name `weights import` where a download cannot work, and `weights list` / `verify` say what is
wrong with a family instead of calling it installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.__main__ import main as core_main
from core.weights import MODELS

REPO = Path(__file__).resolve().parents[1]

# runs `python -m core ARGS` in a process where building the networks fails loudly and torch must not be imported
# by the time the command returns: the checks came first, and needed nothing heavy
CHECK_FIRST = ("import sys, types\n"
               "p = types.ModuleType('core.pipeline')  # stands in for the real one, which imports torch\n"
               "sys.modules['core.pipeline'] = p\n"
               "def refuse(*a, **k):\n    raise SystemExit('models loaded before the check')\n"
               "p.build_pipeline = refuse\n"
               "from core.__main__ import main\nrc = main(sys.argv[1:])\n"
               "assert 'torch' not in sys.modules, 'torch imported before the check'\nsys.exit(rc)\n")


def run_checked(*argv: str, weights: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if weights is not None:
        env["HEADCAST_WEIGHTS_DIR"] = str(weights)
    return subprocess.run([sys.executable, "-c", CHECK_FIRST, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def no_face(tmp_path) -> Path:
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((300, 400, 3), 120, np.uint8))
    return path


@pytest.fixture()
def liveportrait_only(tmp_path, liveportrait_root) -> Path:
    """LivePortrait installed (the parity kit's stand-ins), JoyVASA not."""
    root = tmp_path / "weights"
    shutil.copytree(liveportrait_root / "liveportrait", root / "liveportrait")
    return root


def test_render_names_a_photo_without_a_face_before_loading_anything(tmp_path, no_face, speech_wav):
    r = run_checked("render", "--portrait", str(no_face), "--audio", str(speech_wav), "--out",
                    str(tmp_path / "o.mp4"), "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "No face found in" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_live_names_a_photo_without_a_face_before_loading_anything(no_face, speech_wav):
    r = run_checked("live", "--portrait", str(no_face), "--input", str(speech_wav), "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "No face found in" in r.stderr, r.stderr


def test_missing_joyvasa_files_are_named_at_once_with_import(tmp_path, liveportrait_only, astronaut, speech_wav):
    """Issue 21 measured 46.7 s before this message, which said only "fetch ... again"."""
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    for argv in (("render", "--portrait", str(photo), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                  "--motion", "joyvasa"),
                 ("live", "--portrait", str(photo), "--input", str(speech_wav), "--motion", "joyvasa")):
        r = run_checked(*argv, weights=liveportrait_only)
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip()
        assert line.startswith("error: the joyvasa weights are not installed") and "\n" not in line, r.stderr
        assert "weights download joyvasa" in line and "weights import DIR" in line
        assert "liveportrait" not in line.split("(weights folder")[0]  # those are installed


def test_a_damaged_file_is_named_before_loading(tmp_path, liveportrait_only, astronaut, speech_wav):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    warping = liveportrait_only / MODELS["liveportrait"].files[2].local
    warping.write_bytes(warping.read_bytes()[:1000])
    r = run_checked("render", "--portrait", str(photo), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                    weights=liveportrait_only)
    assert r.returncode == 2 and "warping_module.pth: damaged" in r.stderr, r.stderr
    assert "weights import DIR" in r.stderr


def test_joyvasa_file_errors_mention_import():
    from core.motion.joyvasa.files import FIX

    assert "weights download joyvasa" in FIX and "weights import DIR" in FIX and "again" not in FIX


def test_weights_list_calls_a_damaged_family_damaged(tmp_path, capsys):
    """Issue 21: a family with a damaged file was listed as "installed", with marks nobody explained."""
    root = tmp_path / "w"
    for f in MODELS["joyvasa"].files:
        (root / f.local).parent.mkdir(parents=True, exist_ok=True)
    (root / MODELS["joyvasa"].files[0].local).write_bytes(b"PK\x03\x04 not a whole zip")
    (root / MODELS["joyvasa"].files[1].local).write_bytes(b"\x80\x04 a pickle")
    assert core_main(["weights", "--root", str(root), "list"]) == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines() if line and not line.startswith(" ")}
    assert rows["joyvasa"].split()[2] == "damaged", captured.out
    assert rows["liveportrait"].split()[2] == "missing"
    detail = [line for line in captured.out.splitlines() if "motion_generator_hubert_chinese.pt" in line][0]
    assert detail.split()[0] == "DAMAGED" and "(" in detail  # the file, in words, with the reason
    assert "weights import DIR" in captured.err and "weights download" in captured.err


def test_weights_verify_suggests_import_too(tmp_path, capsys):
    root = tmp_path / "root"
    target = root / "JoyVASA/motion_template/motion_template.pkl"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"damaged")
    assert core_main(["weights", "--root", str(root), "verify"]) == 1
    err = capsys.readouterr().err
    assert "weights download joyvasa" in err and "weights import DIR" in err
