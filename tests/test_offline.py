"""`python -m core render`: a real mp4 with muxed audio, motion dumps, and clean failures on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.__main__ import main as core_main
from core.audio.io import save_wav
from core.liveportrait import LivePortraitConfig, build_liveportrait, save_liveportrait
from core.weights import MODELS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def portrait_png(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def durations(path: Path) -> tuple[float, float, int]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        vdur = frames / float(v.average_rate)
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
        adur = samples / c.streams.audio[0].rate
    return vdur, adur, frames


def test_render_mp4_durations_agree(tmp_path, portrait_png, speech_wav):
    out, dump = tmp_path / "talk.mp4", tmp_path / "motion.npz"
    rc = core_main(["render", "--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(out),
                    "--synthetic-weights", "tiny", "--dump-motion", str(dump)])
    assert rc == 0
    vdur, adur, frames = durations(out)
    assert abs(vdur - adur) <= 1 / 25 + 1e-6, (vdur, adur)
    motion = np.load(dump)
    assert motion["motion"].shape == (frames, 70) and str(motion["source"]) == "retarget"
    assert motion["lip_ratio"].shape == (frames,) and motion["lip_ratio"].max() > 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion.npz", "talk.mp4"]


def test_dump_motion_without_rendering(tmp_path, portrait_png, speech_wav, speech_16k):
    dump = tmp_path / "m.npz"
    assert core_main(["render", "--portrait", str(portrait_png), "--audio", str(speech_wav),
                      "--synthetic-weights", "tiny", "--dump-motion", str(dump)]) == 0
    z = np.load(dump)
    expected = len(speech_16k) / 16000 * 25
    assert z["motion"].shape[1] == 70 and abs(len(z["motion"]) - expected) <= 1
    assert str(z["source"]) == "retarget"  # the default without a DiT model
    lip = z["lip_ratio"]  # the retarget source's lip ratio, one per frame, opening during speech
    assert lip.shape == (len(z["motion"]),) and lip.max() > 0.2 and np.isfinite(lip).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no video written, no temp files


def run_cli(*args: str, env_root: Path | None = None) -> subprocess.CompletedProcess:
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    if env_root is not None:
        env["HEADCAST_WEIGHTS_DIR"] = str(env_root)
    return subprocess.run([sys.executable, "-m", "core", "render", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_missing_weights(tmp_path, portrait_png, speech_wav):
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                env_root=tmp_path / "empty")
    assert r.returncode == 2
    assert "Missing liveportrait weights" in r.stderr and "python -m core weights download liveportrait" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_weights(tmp_path, portrait_png, speech_wav):
    root = tmp_path / "weights"
    save_liveportrait(build_liveportrait(LivePortraitConfig.tiny()), root)
    damaged = root / MODELS["liveportrait"].files[0].local
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated download
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                env_root=root)
    assert r.returncode == 2 and "Cannot read" in r.stderr and "appearance_feature_extractor.pth" in r.stderr
    assert "weights download" in r.stderr
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*partial*"))


def test_no_face_and_bad_audio(tmp_path, portrait_png, speech_wav):
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((300, 300, 3), 127, np.uint8))
    r = run_cli("--portrait", str(wall), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "No face found in" in r.stderr and "wall.png" in r.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....not really")
    r = run_cli("--portrait", str(portrait_png), "--audio", str(junk), "--out", str(tmp_path / "o.mp4"),
                "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "junk.wav" in r.stderr
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*partial*"))


def test_interrupted_render_leaves_no_finished_looking_file(tmp_path, portrait_png):
    """Kill the renderer mid-way: neither the output name nor a leftover may look complete."""
    long_audio = tmp_path / "long.wav"
    save_wav(long_audio, np.random.default_rng(0).normal(0, 0.1, 16000 * 60).astype(np.float32))
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "core", "render", "--portrait", str(portrait_png), "--audio",
                             str(long_audio), "--out", str(out), "--synthetic-weights", "tiny"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    for line in iter(proc.stderr.readline, ""):
        if "render:" in line or "frame" in line:
            break
    proc.kill()
    proc.wait()
    assert not out.exists()
    assert all(p.name.endswith((".wav", ".partial.mp4")) for p in tmp_path.iterdir())
