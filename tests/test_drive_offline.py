"""`python -m core render --drive VIDEO`: one frame per driving frame at 25 fps, the driving audio kept, faces
missing in some frames, driving videos without audio, and the pieces (timeline resampling, presence easing)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from core.__main__ import main as core_main
from core.drive.motion import DrivingMotion
from core.drive.take import fill_missing, presence_weights
from core.drive.video import DrivingVideoError, frames_at_output_rate


def write_video(path: Path, frames: list[np.ndarray], fps: int, audio_seconds: float | None = None) -> Path:
    """An H.264 mp4 at `fps` (and an AAC tone of `audio_seconds`, if given)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        v.time_base = Fraction(1, fps)
        a = c.add_stream("aac", rate=48000, layout="mono") if audio_seconds else None
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
        if a is not None:
            n = int(48000 * audio_seconds)
            tone = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 220 / 48000)).astype(np.float32)[None]
            for i in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i : i + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate, af.pts = 48000, i
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def face_frames(astronaut: np.ndarray, n: int, missing: range = range(0)) -> list[np.ndarray]:
    """The astronaut moving a little (shifted / slightly zoomed); gray frames with no face at `missing`."""
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):
        if i in missing:
            out.append(np.full_like(small, 128))
            continue
        m = np.float32([[1 + 0.01 * (i % 4), 0, 3 * np.sin(i / 3)], [0, 1 + 0.01 * (i % 4), 2 * np.cos(i / 4)]])
        out.append(cv2.warpAffine(small, m, (256, 256), borderMode=cv2.BORDER_REPLICATE))
    return out


def probe(path: Path) -> tuple[int, float, float | None]:
    """(video frames, video fps, audio seconds or None)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        fps = float(v.average_rate)
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return frames, fps, None
        samples = sum(f.samples for f in c.decode(c.streams.audio[0]))
        return frames, fps, samples / c.streams.audio[0].rate


@pytest.fixture(scope="module")
def portrait_png(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def render(portrait: Path, drive: Path, out: Path, *extra: str) -> int:
    return core_main(["render", "--portrait", str(portrait), "--drive", str(drive), "--out", str(out),
                      "--synthetic-weights", "tiny", *extra])


@pytest.mark.parametrize(("fps", "n", "expected"), [(25, 10, 10), (30, 30, 25), (60, 24, 10), (15, 6, 10)])
def test_timeline_resamples_to_25_fps(tmp_path, fps, n, expected):
    frames = [np.full((32, 32, 3), 8 * i, np.uint8) for i in range(n)]
    got = list(frames_at_output_rate(write_video(tmp_path / "v.mp4", frames, fps), 25))
    assert len(got) == expected
    # output frame k shows the driving frame on screen at k / 25 s (H.264 keeps flat gray levels within 2)
    shown = [int(np.median(g)) for g in got]
    want = [8 * min(n - 1, (k * fps) // 25) for k in range(expected)]
    assert np.abs(np.subtract(shown, want)).max() <= 2, (shown, want)


def test_unreadable_driving_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"hello")
    with pytest.raises(DrivingVideoError, match="not a video"):
        list(frames_at_output_rate(bad))


def test_presence_weights_hold_then_ease_and_return():
    present = np.array([1] * 3 + [0] * 10 + [1] * 6, bool)
    w = presence_weights(present, hold=2, ease=4)
    assert (w[:5] == 1).all()  # with the face, and two frames of hold
    np.testing.assert_allclose(w[5:9], [0.75, 0.5, 0.25, 0.0])  # then eased to rest
    assert (w[9:13] == 0).all()
    np.testing.assert_allclose(w[13:17], [0.25, 0.5, 0.75, 1.0])  # and back when the face returns
    assert presence_weights(np.zeros(3, bool), hold=0, ease=1).tolist() == [0, 0, 0]


def test_fill_missing_holds_the_last_face_and_the_first_before_it():
    def m(v):
        z = torch.full((1, 1), float(v))
        return DrivingMotion(scale=z, R=z.expand(1, 3).reshape(1, 1, 3).expand(1, 3, 3), exp=torch.zeros(1, 21, 3),
                             t=torch.zeros(1, 3), kp=torch.zeros(1, 21, 3), x_s=torch.zeros(1, 21, 3),
                             c_eyes=torch.zeros(1, 2), c_lip=torch.zeros(1, 1))
    filled = fill_missing([None, m(1), None, None, m(2), None])
    assert filled.scale.reshape(-1).tolist() == [1, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        fill_missing([None, None])


def test_render_drive_one_frame_per_driving_frame_with_its_audio(tmp_path, portrait_png, astronaut, capsys):
    drive = write_video(tmp_path / "me.mp4", face_frames(astronaut, 20), 25, audio_seconds=0.8)
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out) == 0
    frames, fps, audio = probe(out)
    assert (frames, fps) == (20, 25.0)
    assert audio is not None and abs(audio - 0.8) < 0.05  # the driving video's own audio
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.mp4", "o.mp4"]  # no temporary left
    # the face moves: not every frame is the same picture
    with av.open(str(out)) as c:
        pics = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(c.streams.video[0])]
    assert max(np.abs(p - pics[0]).max() for p in pics[1:]) > 10


def test_render_drive_30fps_video_gives_25fps(tmp_path, portrait_png, astronaut):
    drive = write_video(tmp_path / "me30.mp4", face_frames(astronaut, 30), 30)
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out) == 0
    assert probe(out)[:2] == (25, 25.0)


def test_render_drive_without_a_face_in_some_frames(tmp_path, portrait_png, astronaut, capsys):
    drive = write_video(tmp_path / "gap.mp4", face_frames(astronaut, 24, missing=range(8, 15)), 25, 0.96)
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out) == 0
    err = capsys.readouterr().err
    assert "no face in 7 of 24 frames" in err and err.count("no face in") == 1
    assert probe(out)[0] == 24


def test_render_drive_with_no_face_at_all_is_a_clear_error(tmp_path, portrait_png):
    drive = write_video(tmp_path / "empty.mp4", [np.full((128, 128, 3), 90, np.uint8)] * 5, 25)
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out) == 2
    assert not out.exists()


def test_render_drive_video_without_audio_is_silent_and_says_so(tmp_path, portrait_png, astronaut, capsys):
    drive = write_video(tmp_path / "mute.mp4", face_frames(astronaut, 12), 25)
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out) == 0
    err = capsys.readouterr().err
    assert err.count("has no usable audio track") == 1 and "silent" in err
    assert probe(out) == (12, 25.0, None)


def test_render_drive_with_audio_option_uses_that_audio(tmp_path, portrait_png, astronaut):
    from core.audio.io import save_wav

    drive = write_video(tmp_path / "mute.mp4", face_frames(astronaut, 12), 25)
    speech = save_wav(tmp_path / "s.wav", (0.2 * np.sin(np.arange(32000) / 5)).astype(np.float32))
    out = tmp_path / "o.mp4"
    assert render(portrait_png, drive, out, "--audio", str(speech)) == 0
    frames, _, audio = probe(out)
    assert frames == 12 and audio is not None and abs(audio - 12 / 25) < 0.05  # cut to the video's length


def test_render_drive_argument_problems_are_one_line(tmp_path, portrait_png, capsys):
    out = tmp_path / "o.mp4"
    assert render(portrait_png, tmp_path / "missing.mp4", out) == 2
    assert "driving video or template file not found" in capsys.readouterr().err
    assert core_main(["render", "--portrait", str(portrait_png), "--out", str(out),
                      "--synthetic-weights", "tiny"]) == 2
    assert "--drive VIDEO" in capsys.readouterr().err


def test_one_driving_window_for_the_whole_video_keeps_head_movement(astronaut):
    """The official driving crop: the mean face square crops every frame, so a head that moves moves in the crop."""
    from core.drive.video import DRIVING_CROP_RULE, crop_window, driving_cropper, driving_window, face_square
    from core.face import FaceCropper

    canvas = np.zeros((640, 720, 3), np.uint8)
    left, right = canvas.copy(), canvas.copy()
    left[64:576, 40:552] = astronaut
    right[64:576, 140:652] = astronaut  # the same face 100 px to the right
    cropper = driving_cropper(FaceCropper())
    assert cropper.rule == DRIVING_CROP_RULE
    a, b = cropper.crop(left, "left", face=0), cropper.crop(right, "right", face=0)
    (ca, sa), (cb, sb) = face_square(a), face_square(b)
    assert abs(cb[0] - ca[0] - 100) < 2 and abs(cb[1] - ca[1]) < 2 and abs(sa - sb) < 2
    window = driving_window([face_square(a), face_square(b)])
    side = 512 / window[0, 0]
    np.testing.assert_allclose(window[:, 2], 256 - window[:, :2] @ ((ca + cb) / 2), atol=1e-6)
    assert abs(side - (sa + sb) / 2) < 1e-6
    ga, gb = crop_window(left, window), crop_window(right, window)
    shift = round(100 * 256 / side)  # the face moves this far inside the fixed window
    diff = np.abs(ga[:, : 256 - shift].astype(int) - gb[:, shift:].astype(int))
    assert diff[20:-20, 20:-20].mean() < 6 and np.abs(ga.astype(int) - gb.astype(int)).mean() > 20


def test_render_face_plus_voice_mouth_from_speech(tmp_path, portrait_png, astronaut, capsys):
    from core.audio.io import save_wav

    drive = write_video(tmp_path / "me.mp4", face_frames(astronaut, 16, missing=range(10, 13)), 25)
    t = np.arange(16000, dtype=np.float32) / 16000
    speech = save_wav(tmp_path / "s.wav", (0.5 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0))
                      .astype(np.float32))
    face_only, mixed = tmp_path / "face.mp4", tmp_path / "mixed.mp4"
    assert render(portrait_png, drive, face_only, "--audio", str(speech)) == 0
    assert render(portrait_png, drive, mixed, "--audio", str(speech), "--drive-mix", "face+voice") == 0
    frames, fps, audio = probe(mixed)
    assert (frames, fps) == (16, 25.0) and audio is not None
    with av.open(str(face_only)) as a, av.open(str(mixed)) as b:
        fa = [f.to_ndarray(format="rgb24").astype(np.int16) for f in a.decode(a.streams.video[0])]
        fb = [f.to_ndarray(format="rgb24").astype(np.int16) for f in b.decode(b.streams.video[0])]
    assert max(np.abs(x - y).max() for x, y in zip(fa, fb, strict=True)) > 10  # the speech moves the mouth
    assert render(portrait_png, drive, tmp_path / "x.mp4", "--drive-mix", "face+voice", "--drive-absolute") == 2
    assert "relative motion only" in capsys.readouterr().err
