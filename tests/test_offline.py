"""`python -m core render`: a real mp4 with muxed audio, motion dumps, and clean failures on bad input."""

from __future__ import annotations

import os
import signal
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
from tests.helpers import kill_after

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
    assert "the liveportrait weights are not installed" in r.stderr  # said before anything loads (core/precheck.py)
    assert "python -m core weights download liveportrait" in r.stderr and "weights import DIR" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_weights(tmp_path, portrait_png, speech_wav):
    root = tmp_path / "weights"
    save_liveportrait(build_liveportrait(LivePortraitConfig.tiny()), root)
    damaged = root / MODELS["liveportrait"].files[0].local
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated download
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(tmp_path / "o.mp4"),
                env_root=root)
    assert r.returncode == 2 and "appearance_feature_extractor.pth: damaged" in r.stderr  # before loading
    assert "not a complete PyTorch checkpoint" in r.stderr
    assert "miniz" not in r.stderr and "PytorchStreamReader" not in r.stderr
    assert "weights download" in r.stderr and "weights import DIR" in r.stderr
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


# ---- issue 17: every input a user brings ------------------------------------------------------------------
def _stereo_44k(path: Path, mono16k: np.ndarray) -> Path:
    """The espeak speech as a 44.1 kHz stereo WAV (right channel quieter, so the channels differ)."""
    import wave

    from core.audio.io import resample

    x = resample(mono16k, 16000, 44100)
    pcm = (np.clip(np.stack([x, 0.5 * x], 1), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(pcm.tobytes())
    return path


def test_mp4_keeps_the_input_audio_rate_and_channels(tmp_path, portrait_png, speech_16k):
    wav = _stereo_44k(tmp_path / "stereo.wav", speech_16k[: 16000 * 2])
    out = tmp_path / "talk.mp4"
    assert core_main(["render", "--portrait", str(portrait_png), "--audio", str(wav), "--out", str(out),
                      "--synthetic-weights", "tiny"]) == 0
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert (a.rate, a.channels) == (44100, 2)
        assert a.bit_rate >= 160_000  # AAC at ~192 kb/s for stereo
        left, right = np.concatenate([f.to_ndarray() for f in c.decode(a)], axis=1)
    ratio = np.sqrt(np.mean(right**2) / np.mean(left**2))
    assert 0.4 < ratio < 0.6  # the two channels are the user's, not a duplicated mono mix
    vdur, adur, _ = durations(out)
    assert abs(vdur - adur) <= 1 / 25 + 1e-3


def test_out_never_overwrites_an_input(tmp_path, portrait_png, speech_wav):
    photo = tmp_path / "photo.mp4"  # the portrait, renamed .mp4
    photo.write_bytes(portrait_png.read_bytes())
    before = photo.read_bytes()
    r = run_cli("--portrait", str(photo), "--audio", str(speech_wav), "--out", str(photo))
    assert r.returncode == 2 and "is the portrait file itself" in r.stderr and "Traceback" not in r.stderr
    copy = tmp_path / "copy.mp4"  # a photo under an mp4 name, not the input itself
    copy.write_bytes(before)
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(copy))
    assert r.returncode == 2 and "is not a .mp4 file Headcast wrote" in r.stderr
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", str(speech_wav))
    assert r.returncode == 2 and "must end in .mp4" in r.stderr
    assert photo.read_bytes() == before and copy.read_bytes() == before


@pytest.mark.parametrize("out", ["/sys/x.mp4", "/proc/x.mp4"])
def test_unwritable_output_is_one_clear_line(out, portrait_png, speech_wav):
    r = run_cli("--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", out)
    assert r.returncode == 2 and r.stderr.startswith(f"error: Cannot write {out}: ")
    assert "Traceback" not in r.stderr and "partial" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_argument_and_path_errors_come_before_torch(tmp_path, portrait_png, speech_wav):
    """Why fast: the check runs before torch is imported (measured 6-11 s -> 0.7 s on the dev machine)."""
    code = ("import sys; from core.__main__ import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules, rc)")
    cases = [
        ["render", "--portrait", str(tmp_path / "nope.png"), "--audio", str(speech_wav), "--out", "o.mp4"],
        ["render", "--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", "/sys/x.mp4"],
        ["render", "--portrait", str(portrait_png), "--audio", str(speech_wav), "--out", "o.avi"],
        ["render", "--portrait", str(portrait_png), "--audio", str(tmp_path), "--out", "o.mp4"],
        ["weights", "import", str(tmp_path / "nope")],
    ]
    for argv in cases:
        r = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
        assert r.stdout.split() == ["False", "2"], (argv, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_empty_and_too_short_audio(tmp_path, portrait_png):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    r = run_cli("--portrait", str(portrait_png), "--audio", str(empty), "--out", str(tmp_path / "o.mp4"),
                "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "empty.wav is empty (0 bytes)" in r.stderr and "Convert" not in r.stderr
    one = save_wav(tmp_path / "one.wav", np.array([0.1], np.float32))
    r = run_cli("--portrait", str(portrait_png), "--audio", str(one), "--out", str(tmp_path / "o.mp4"),
                "--synthetic-weights", "tiny")
    assert r.returncode == 2 and "one.wav is too short (0 ms; at least 0.5 s is needed)" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_face_option_picks_one_of_several(tmp_path, astronaut, speech_16k):
    pair = np.full((512, 1024, 3), 200, np.uint8)
    pair[:, :512] = astronaut
    pair[100:400, 650:950] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    photo = tmp_path / "pair.png"
    cv2.imwrite(str(photo), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))
    wav = save_wav(tmp_path / "a.wav", speech_16k[:16000])
    r = run_cli("--portrait", str(photo), "--audio", str(wav), "--dump-motion", str(tmp_path / "m.npz"),
                "--synthetic-weights", "tiny")
    assert r.returncode == 0 and "faces in" in r.stderr and "--face N" in r.stderr  # never a silent choice
    r = run_cli("--portrait", str(photo), "--audio", str(wav), "--dump-motion", str(tmp_path / "m.npz"),
                "--synthetic-weights", "tiny", "--face", "9")
    assert r.returncode == 2 and "face 9 does not exist" in r.stderr and "largest first" in r.stderr
    r = run_cli("--portrait", str(photo), "--audio", str(wav), "--dump-motion", str(tmp_path / "m.npz"),
                "--synthetic-weights", "tiny", "--face", "2")
    assert r.returncode == 0 and "faces in" not in r.stderr
    assert "Running on CPU" not in r.stderr  # tiny weights are not slow


def test_partials_of_killed_runs_are_removed_by_the_next_run(tmp_path, portrait_png, speech_16k):
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "o.mp4"
    stale = tmp_path / f".o.mp4.{dead.pid}.k1ll3d.partial.mp4"
    stale.write_bytes(b"half a video")
    live = tmp_path / f".o.mp4.{os.getppid()}.l1ve.partial.mp4"  # a running process's file is left alone
    live.write_bytes(b"still writing")
    wav = save_wav(tmp_path / "a.wav", speech_16k[:16000])
    assert core_main(["render", "--portrait", str(portrait_png), "--audio", str(wav), "--out", str(out),
                      "--synthetic-weights", "tiny"]) == 0
    assert out.is_file() and not stale.exists() and live.exists()


def test_ctrl_c_exits_130_and_keeps_nothing(tmp_path, portrait_png):
    long_audio = save_wav(tmp_path / "long.wav", np.random.default_rng(0).normal(0, 0.1, 16000 * 60)
                          .astype(np.float32))
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "core", "render", "--portrait", str(portrait_png), "--audio",
                             str(long_audio), "--out", str(out), "--synthetic-weights", "tiny"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    seen = []
    for line in iter(proc.stderr.readline, ""):
        seen.append(line)
        if "frame/s" in line:  # frames are being written
            break
    assert list(tmp_path.glob(f".o.mp4.{proc.pid}.*.partial.mp4")), "the partial file names its process"
    proc.send_signal(signal.SIGINT)
    with kill_after(proc, 120):  # an unanswered Ctrl-C fails here instead of hanging the suite
        rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


def test_a_photo_over_max_size_is_prepared_once_at_its_own_size(tmp_path, astronaut, speech_16k, monkeypatch):
    """Issue 23: the engine was handed the prepared (scaled-down) canvas, so the face was detected again at the
    smaller size (`--face N` could pick another face) and lite mode's atlas key changed (every phone photo built
    its atlas twice). Every face detection must see the photo as loaded."""
    from core.face import FaceCropper

    photo = tmp_path / "big.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    wav = save_wav(tmp_path / "a.wav", speech_16k[:8000])
    shapes = []
    real_crop = FaceCropper.crop

    def crop(self, image, *a, **k):
        shapes.append(image.shape)
        return real_crop(self, image, *a, **k)

    monkeypatch.setattr(FaceCropper, "crop", crop)
    out = tmp_path / "small.mp4"
    assert core_main(["render", "--portrait", str(photo), "--audio", str(wav), "--out", str(out),
                      "--synthetic-weights", "tiny", "--max-size", "256"]) == 0
    assert shapes and set(shapes) == {astronaut.shape}, shapes
    assert durations(out)[2] == 13
