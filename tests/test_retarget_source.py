"""The retargeting motion source on a real speech recording: lip sync, silence, blinks, head motion, causality."""

from __future__ import annotations

import numpy as np
import pytest

from core import layout
from core.motion.retarget_source import RetargetMotionSource
from core.motion.source import SAMPLES_PER_FRAME, MotionSettings, MotionSource

GAP_S = 1.5


@pytest.fixture(scope="module")
def speech_with_gap(speech_16k):
    half = len(speech_16k) // 2 // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
    gap = np.zeros(int(GAP_S * 16000), np.float32)
    audio = np.concatenate([speech_16k[:half], gap, speech_16k[half:]])
    return audio, (half // SAMPLES_PER_FRAME, (half + len(gap)) // SAMPLES_PER_FRAME)


def run(source, audio, block=320):
    motion, lips, eyes = [], [], []
    for i in range(0, len(audio), block):
        source.push_audio(audio[i : i + block])
        motion.append(source.pull())
        lips.append(source.last_aux["lip_ratio"])
        eyes.append(source.last_aux["eye_ratio"])
    motion.append(source.flush())
    lips.append(source.last_aux["lip_ratio"])
    eyes.append(source.last_aux["eye_ratio"])
    return np.concatenate(motion), np.concatenate(lips), np.concatenate(eyes)


def envelope(audio):
    n = len(audio) // SAMPLES_PER_FRAME
    frames = audio[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
    return np.sqrt((frames**2).mean(1))


def test_is_a_motion_source():
    assert isinstance(RetargetMotionSource(), MotionSource)


def test_lip_ratio_follows_speech_and_closes_in_the_gap(speech_with_gap):
    audio, (g0, g1) = speech_with_gap
    motion, lip, _ = run(RetargetMotionSource(), audio)
    assert len(motion) == -(-len(audio) // SAMPLES_PER_FRAME)
    env = envelope(audio)
    n = len(env)
    # lip opening correlates with the speech envelope (dB) over the voiced frames (threshold 0.5)
    voiced = env > 0.01
    voiced[g0 - 2 : g1 + 2] = False
    db = 20 * np.log10(env[voiced] + 1e-6)
    r = np.corrcoef(lip[:n][voiced], db)[0, 1]
    assert r > 0.5, f"lip/envelope correlation {r:.2f}"
    assert lip[:n][voiced].mean() > 0.2
    # closed through the gap (after a short release)
    assert np.all(lip[g0 + 5 : g1 - 1] == 0)


def test_blinks_and_head_motion_over_a_minute(speech_16k):
    reps = int(np.ceil(60 * 16000 / len(speech_16k)))
    audio = np.tile(speech_16k, reps)[: 60 * 16000]
    source = RetargetMotionSource(seed=3)
    motion, eye, blink = [], [], []  # blink_s: per frame, the duration of a blink starting there (else 0)
    for i in range(0, len(audio), 1600):
        source.push_audio(audio[i : i + 1600])
        motion.append(source.pull())
        eye.append(source.last_aux["eye_ratio"])
        blink.append(source.last_aux["blink_s"])
    motion.append(source.flush())
    eye.append(source.last_aux["eye_ratio"])
    blink.append(source.last_aux["blink_s"])
    motion, eye, blink = np.concatenate(motion), np.concatenate(eye), np.concatenate(blink)
    assert len(blink) == len(motion)
    starts = np.flatnonzero(blink) / 25
    per_minute = len(starts) * 60 / (len(motion) / 25)
    assert 10 <= per_minute <= 26, per_minute
    durations = blink[blink > 0]
    assert np.all((durations >= 0.1) & (durations <= 0.15))
    assert np.all(np.diff(starts) > durations[:-1])  # never a blink during a blink
    assert eye.min() < 0.1  # the eyes really close
    pose = motion[:, layout.POSE]
    assert np.abs(pose).max() <= 4.5  # bounded (degrees)
    assert np.abs(np.diff(pose, axis=0)).max() < 0.5  # smooth: under half a degree per frame
    assert pose.std(0).min() > 0.2  # it does move


def test_head_gain_and_expression_gain(speech_with_gap):
    audio, _ = speech_with_gap
    base, lip1, _ = run(RetargetMotionSource(seed=1), audio)
    s = MotionSettings(expression_gain=0.5, head_gain=0.0)
    quiet, lip2, _ = run(RetargetMotionSource(seed=1, settings=s), audio)
    assert np.abs(quiet[:, layout.POSE]).max() == 0
    assert np.allclose(lip2, lip1 * 0.5, atol=1e-6)


def test_no_frame_depends_on_audio_beyond_the_lookahead(speech_with_gap):
    audio, _ = speech_with_gap
    source = RetargetMotionSource()
    k = 60
    cut = (k + 1 + source.config.lookahead_frames) * SAMPLES_PER_FRAME
    altered = audio.copy()
    altered[cut:] = np.random.default_rng(0).normal(0, 0.3, len(audio) - cut)
    a, lip_a, _ = run(RetargetMotionSource(), audio)
    b, lip_b, _ = run(RetargetMotionSource(), altered)
    assert np.array_equal(a[: k + 1], b[: k + 1]) and np.array_equal(lip_a[: k + 1], lip_b[: k + 1])
    assert not np.array_equal(lip_a[k + 1 : k + 10], lip_b[k + 1 : k + 10])
    assert source.latency_ms() == 40.0


def test_portrait_bound_tables_use_the_mlps(astronaut, speech_with_gap):
    from core.device import pick_device
    from core.liveportrait import LivePortraitConfig, build_liveportrait
    from core.render import Renderer

    renderer = Renderer(build_liveportrait(LivePortraitConfig.tiny(), seed=0), pick_device("cpu"))
    portrait = renderer.prepare(astronaut, "astronaut")
    source = RetargetMotionSource(models=renderer.models)
    source.reset(portrait)
    audio, (g0, g1) = speech_with_gap
    motion, lip, _ = run(source, audio)
    exp = motion[:, layout.EXP]
    open_frames = lip > 0.3
    assert np.abs(exp[open_frames]).mean() > 10 * np.abs(exp[g0 + 5 : g1 - 1]).mean() + 1e-9
    frames = renderer.render(portrait, motion[::20])
    assert frames.shape[0] == len(motion[::20])


def test_source_ratios_from_203_landmarks_and_fallback_without_portrait():
    from types import SimpleNamespace

    from core.motion.retarget_source import EYE_KEYPOINTS, LIP_KEYPOINTS, RetargetConfig, source_ratios

    lmk = np.zeros((203, 2))
    lmk[48], lmk[66] = (0, 0), (40, 0)  # mouth width 40
    lmk[90], lmk[102] = (20, -5), (20, 5)  # lip gap 10 -> 0.25
    lmk[0], lmk[12], lmk[6], lmk[18] = (0, 0), (30, 0), (15, -4), (15, 5)  # left eye 9 / 30
    lmk[24], lmk[36], lmk[30], lmk[42] = (0, 0), (20, 0), (10, 0), (10, 6)  # right eye 6 / 20
    portrait = SimpleNamespace(face=SimpleNamespace(landmarks=lmk))
    lip, (left, right) = source_ratios(portrait, RetargetConfig())
    assert np.allclose([lip, left, right], [0.25, 0.3, 0.3], atol=1e-6)
    no_lmk = SimpleNamespace(face=SimpleNamespace(landmarks=None))
    assert source_ratios(no_lmk, RetargetConfig()) == (0.0, (0.35, 0.35))
    # unbound (reset(None)): the documented fallback moves only the lip / eyelid keypoints
    source = RetargetMotionSource()
    lip_kp = np.abs(source._lip_table[-1].reshape(21, 3)).sum(1) > 0
    eye_kp = np.abs(source._eye_table[0].reshape(21, 3)).sum(1) > 0
    assert set(np.flatnonzero(lip_kp)) == set(LIP_KEYPOINTS)
    assert set(np.flatnonzero(eye_kp)) == set(EYE_KEYPOINTS)
