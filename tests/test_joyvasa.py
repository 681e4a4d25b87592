"""JoyVASA import: the kit's stand-in checkpoint loads strictly and reproduces the official code's numbers."""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from core import layout
from core.motion.diffusion import conditioned, guided
from core.motion.joyvasa import (
    CHECKPOINT_REL,
    TEMPLATE_REL,
    JoyVASA,
    JoyVASAArgs,
    JoyVASACheckpointError,
    JoyVASAConfig,
    JoyVASAModel,
    JoyVASAMotionSource,
    MotionTemplate,
    absolute_rows,
    load_joyvasa,
    load_state_dict_strictly,
    postprocess,
    read_checkpoint,
    relative_rows,
)
from core.motion.joyvasa.audio import pad_window
from core.motion.source import SAMPLES_PER_FRAME, MotionSource
from core.weights import MissingWeightsError
from tests.helpers import assert_close

ANGLE = {"max_abs": 2e-3, "rel_l2": None}
GROUPS = {"prefix": "out_prefix", "fixed": "out"}  # positional encoding -> the kit's expected-output group


def close(got, vectors, key):
    if isinstance(got, torch.Tensor):
        got = got.detach().numpy()
    tol = ANGLE if key.rsplit("_", 1)[-1] in ("pitch", "yaw", "roll") else {}
    assert_close(got, vectors[key], key, **tol)


@pytest.fixture(scope="module")
def verified(joyvasa_kit):
    """--verify first: a mismatch means this PyTorch draws other stand-in numbers and every test would fail."""
    manifest = joyvasa_kit.load_manifest()
    expected = json.loads((pathlib.Path(joyvasa_kit.__file__).parent / "fingerprints.json").read_text())
    assert dict(joyvasa_kit.fingerprints(manifest)) == expected, "local PyTorch does not reproduce the kit"
    return manifest


@pytest.fixture(scope="module")
def jv(verified, joyvasa_root) -> JoyVASA:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return load_joyvasa(joyvasa_root)


@contextmanager
def encoding(model: JoyVASAModel, name: str):
    old = model.denoising_net.positional_encoding
    model.denoising_net.positional_encoding = name
    try:
        yield
    finally:
        model.denoising_net.positional_encoding = old


def inputs(vectors, group):
    return {k.split("/")[-1]: torch.from_numpy(np.asarray(vectors[k])) for k in vectors.files
            if k.startswith(f"{group}/in/")}


# ------------------------------------------------------------------------------------------------ layout
def test_layout_every_key_consumed(jv, verified, joyvasa_root):
    model_keys = jv.model.state_dict()
    manifest = verified["model"]
    assert sorted(model_keys) == sorted(manifest)  # exact names, nothing left over on either side
    for key, shape in manifest.items():
        assert list(model_keys[key].shape) == shape, key
    assert model_keys["denoising_net.alignment_mask"].dtype == torch.bool
    ckpt = read_checkpoint(joyvasa_root / CHECKPOINT_REL)
    for key, value in ckpt["model"].items():
        if key != "denoising_net.TE.pe":  # deliberately recomputed, as JoyVASA's loader does
            assert torch.equal(model_keys[key], value), key
    assert torch.equal(model_keys["denoising_net.TE.pe"], ckpt["model"]["denoising_net.TE.pe"])


def test_architecture_from_args_and_n_layers_ignored(jv, joyvasa_root):
    ns = read_checkpoint(joyvasa_root / CHECKPOINT_REL)["args"]
    assert ns.n_layers == 6 and isinstance(ns.data_root, pathlib.PurePosixPath)
    assert jv.model.args == JoyVASAArgs(73, 100, 10, 256, "hubert_zh", 50)
    # the published file records no encoding: it runs with the one it was trained with, "prefix"
    assert jv.recorded_encoding is None and jv.default_encoding == "prefix"
    assert len(jv.model.denoising_net.transformer.layers) == 8
    assert jv.model.diffusion_sched.betas.shape == (51,)
    changed = argparse.Namespace(**{**vars(ns), "n_motions": 60, "n_prev_motions": 5})
    args = JoyVASAArgs.from_namespace(changed, pathlib.Path("x.pt"))
    assert (args.n_motions, args.n_prev_motions) == (60, 5)
    with pytest.raises(JoyVASACheckpointError, match="audio_model"):
        JoyVASAArgs.from_namespace(argparse.Namespace(**{**vars(ns), "audio_model": "wav2vec2"}), pathlib.Path("x"))
    bare = argparse.Namespace(**{k: v for k, v in vars(ns).items() if k != "feature_dim"})
    with pytest.raises(JoyVASACheckpointError, match="feature_dim"):
        JoyVASAArgs.from_namespace(bare, pathlib.Path("x"))


def test_hubert_config_built_in_code_matches_chinese_hubert_base(jv, joyvasa_kit):
    from core.motion.joyvasa.audio import hubert_config

    published = json.loads((pathlib.Path(joyvasa_kit.__file__).parent / "config.json").read_text())
    ours = hubert_config().to_dict()
    for key, value in published["hubert_config_json"].items():
        if key != "architectures":
            assert ours[key] == value or list(ours[key]) == value, key
    assert jv.model.audio_encoder.config.hidden_size == 768


def test_weight_g_weight_v_naming_loads(jv, joyvasa_root):
    state = read_checkpoint(joyvasa_root / CHECKPOINT_REL)["model"]
    old = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        old[key.replace("parametrizations.weight.original1", "weight_v")] = value
    assert "audio_encoder.encoder.pos_conv_embed.conv.weight_g" in old
    conv = jv.model.audio_encoder.encoder.pos_conv_embed.conv
    with torch.no_grad():
        conv.parametrizations.weight.original1.zero_()
    load_state_dict_strictly(jv.model, old, joyvasa_root / CHECKPOINT_REL)
    direction = old["audio_encoder.encoder.pos_conv_embed.conv.weight_v"]
    assert torch.equal(conv.parametrizations.weight.original1, direction)


# ------------------------------------------------------------------------------------------------ numbers
def test_audio_front_end(jv, joyvasa_vectors):
    v, m = joyvasa_vectors, jv.model
    wave = torch.from_numpy(v["audio/in/window"])
    with torch.inference_mode():
        padded = pad_window(wave)
        close(padded, v, "audio/out/padded")
        close(m.audio_encoder.feature_extractor(padded), v, "audio/out/cnn_features")
        close(m.audio_encoder(padded).last_hidden_state, v, "audio/out/hubert_hidden")
        close(m.audio_features(wave), v, "audio/out/audio_feat")


@pytest.mark.parametrize("pe", ["prefix", "fixed"])
def test_denoiser(jv, joyvasa_vectors, pe):
    d = inputs(joyvasa_vectors, "denoiser")
    net = jv.model.denoising_net
    with torch.inference_mode(), encoding(jv.model, pe):
        close(net.step_embedding(d["step"]), joyvasa_vectors, "denoiser/out/step_embedding")
        out = net(d["motion_feat"], d["audio_feat"], d["prev_motion_feat"], d["prev_audio_feat"], d["step"])
    close(out, joyvasa_vectors, f"denoiser/{GROUPS[pe]}/target")


@pytest.mark.parametrize("pe", ["prefix", "fixed"])
def test_cfg_step(jv, joyvasa_vectors, pe):
    c, g, m = inputs(joyvasa_vectors, "cfg_step"), GROUPS[pe], jv.model
    t = int(c["t"])
    raw = []  # the network's whole (uncond ; cond) output, captured as the kit's harness did
    hook = m.denoising_net.register_forward_hook(lambda _m, _i, out: raw.append(out))
    try:
        with torch.inference_mode(), encoding(m, pe):
            audio = torch.cat((c["prev_audio_feat"], c["audio_feat"]), 1)
            denoise = guided(conditioned(m, c["prev_motion_feat"], audio), float(c["cfg_scale"]))
            x0 = denoise(c["x_t"], torch.full((len(c["x_t"]),), t))
            c0, c1, sigma = m.diffusion_sched.schedule().posterior(t, t - 1)
            x_prev = c0 * c["x_t"] + c1 * x0 + sigma * c["z"]
    finally:
        hook.remove()
    assert len(raw) == 1 and len(raw[0]) == 2 * len(c["x_t"])  # one forward over a batch of 2B
    uncond, cond = raw[0].chunk(2)
    for name, got in (("denoiser_uncond", uncond), ("denoiser_cond", cond), ("target", x0), ("x_prev", x_prev)):
        close(got, joyvasa_vectors, f"cfg_step/{g}/{name}")


def injected(vectors):
    """The kit's noise order: x_T, then window 0's per-step noise (t = 50..2), then window 1's."""
    draws = [vectors["pipeline/in/x_T"], *vectors["pipeline/in/z_w0"], *vectors["pipeline/in/z_w1"]]
    it = iter(draws)
    return lambda shape: torch.from_numpy(np.asarray(next(it))).reshape(shape)


@pytest.mark.slow
@pytest.mark.parametrize("pe", ["prefix", "fixed"])
def test_pipeline_two_windows(jv, joyvasa_vectors, pe):
    v, g, m = joyvasa_vectors, GROUPS[pe], jv.model
    with encoding(m, pe):
        coef, windows = m.generate(v["pipeline/in/wave"], float(v["pipeline/in/cfg_scale"]), noise=injected(v))
    assert len(windows) == 2
    for i, w in enumerate(windows):
        close(w["audio_feat"], v, f"pipeline/out/audio_feat_w{i}")
        close(w["motion"], v, f"pipeline/{g}/motion_w{i}")
    close(coef, v, f"pipeline/{g}/motion_coef")
    post, _ = postprocess(coef, jv.template)
    assert len(post) == 13
    for name, got in post.items():
        close(got, v, f"pipeline/{g}/{name}")


def test_postprocessing_large_angles(jv, joyvasa_vectors):
    post, _ = postprocess(joyvasa_vectors["postproc/in/coef"], jv.template)
    for name, got in post.items():
        close(got, joyvasa_vectors, f"postproc/out/{name}")
    # the EMA carried across calls equals one pass over the whole sequence
    coef = joyvasa_vectors["postproc/in/coef"]
    a, state = postprocess(coef[:7], jv.template)
    b, _ = postprocess(coef[7:], jv.template, state=state)
    assert np.allclose(np.concatenate((a["smooth_yaw"], b["smooth_yaw"])), post["smooth_yaw"], atol=1e-5)


def test_template_values(jv, joyvasa_vectors):
    tpl = jv.template
    assert np.array_equal(tpl.mean_exp, joyvasa_vectors["template/mean_exp"])
    assert np.array_equal(tpl.lo[4:], np.concatenate([joyvasa_vectors[f"template/min_{k}"]
                                                      for k in ("pitch", "yaw", "roll")]))


@pytest.fixture(scope="module")
def native_rows(jv, joyvasa_vectors):
    """The kit's waveform streamed in native mode (100-frame windows, 50 steps, CFG 2.8), odd push blocks."""
    v = joyvasa_vectors
    source = JoyVASAMotionSource(jv, config=JoyVASAConfig.native(), noise=injected(v))
    assert isinstance(source, MotionSource) and source.positional_encoding == "prefix"
    wave = v["pipeline/in/wave"]
    rows = []
    for i in range(0, len(wave), 4321):
        source.push_audio(wave[i : i + 4321])
        rows.append(source.pull())
    rows.append(source.flush())
    return np.concatenate(rows)


def official(vectors) -> dict[str, np.ndarray]:
    return {k.split("/")[-1]: vectors[k] for k in vectors.files if k.startswith("pipeline/out_prefix/")}


@pytest.mark.slow
def test_native_stream_equals_the_official_pipeline(native_rows, joyvasa_vectors):
    """Streaming in native mode gives the wrapper's motion relative to its first frame, shifted by the 2 leading
    silent frames, for any push block size; the lips carry the absolute expression (weight 1)."""
    v, rows = joyvasa_vectors, native_rows
    assert len(rows) == -(-len(v["pipeline/in/wave"]) // SAMPLES_PER_FRAME)
    assert rows.shape[1] == layout.MOTION_DIM + 1 and np.all(rows[:, layout.LIP_ABSOLUTE] == 1)
    absolute = absolute_rows(official(v))
    expected = absolute[2 : 2 + len(rows)] - absolute[0]
    expected[:, layout.SCALE] = absolute[2 : 2 + len(rows), layout.SCALE] / absolute[0, layout.SCALE] - 1
    lips = np.array([3 * k + c for k in layout.LIP_KEYPOINTS for c in range(3)])
    expected[:, lips] = absolute[2 : 2 + len(rows), lips]
    assert_close(rows[:, layout.EXP], expected[:, layout.EXP], "stream exp")
    assert_close(rows[:, layout.POSE], expected[:, layout.POSE], "stream angles", **ANGLE)
    assert_close(rows[:, 66:70], expected[:, 66:], "stream t/scale", max_abs=1e-4, rel_l2=1e-4)


@pytest.mark.slow
def test_lip_keypoints_follow_the_official_rule(native_rows, joyvasa_vectors):
    """JoyVASA's renderer, animation region "all" (its default): delta_new = exp_s + (exp_i - exp_0), then
    delta_new[lip] = exp_i[lip] for lip keypoints 6, 12, 14, 17, 19, 20. Our rows through the layout contract
    (what the renderer's keypoint step computes) give that expression for a portrait of any expression."""
    exp = official(joyvasa_vectors)["raw_exp"]  # (112, 21, 3) the official generated expression per frame
    n = len(native_rows)
    source = np.random.default_rng(3).normal(0, 0.05, (1, 21, 3)).astype(np.float32)  # the portrait's exp
    expected = source + (exp[2 : 2 + n] - exp[0])
    for lip in (6, 12, 14, 17, 19, 20):
        expected[:, lip] = exp[2 : 2 + n, lip]
    got = layout.driving_expression(torch.from_numpy(source), torch.from_numpy(native_rows)).numpy()
    assert_close(got, expected, "driving expression")
    # the rule matters: the lips are not the portrait's lips plus a change (which is what 70-column rows say)
    relative = layout.driving_expression(source, native_rows[:, : layout.MOTION_DIM])
    assert np.abs(relative[:, list(layout.LIP_KEYPOINTS)] - expected[:, list(layout.LIP_KEYPOINTS)]).max() > 1e-2


# ------------------------------------------------------------------------------------------------ bad files
def test_missing_files_name_the_fix(tmp_path):
    with pytest.raises(MissingWeightsError, match="weights download joyvasa"):
        load_joyvasa(tmp_path)


def test_truncated_checkpoint(joyvasa_root, tmp_path):
    bad = tmp_path / CHECKPOINT_REL
    bad.parent.mkdir(parents=True)
    with open(joyvasa_root / CHECKPOINT_REL, "rb") as f:
        bad.write_bytes(f.read(1 << 20))
    with pytest.raises(JoyVASACheckpointError, match="truncated or damaged.*weights download joyvasa"):
        read_checkpoint(bad)


def test_missing_unexpected_and_reshaped_keys(jv, joyvasa_root):
    path = joyvasa_root / CHECKPOINT_REL
    state = dict(read_checkpoint(path)["model"])
    missing = {k: v for k, v in state.items() if k != "denoising_net.motion_dec.2.bias"}
    with pytest.raises(JoyVASACheckpointError, match="1 missing: denoising_net.motion_dec.2.bias"):
        load_state_dict_strictly(jv.model, missing, path)
    with pytest.raises(JoyVASACheckpointError, match="1 unexpected: module.extra"):
        load_state_dict_strictly(jv.model, {**state, "module.extra": torch.zeros(1)}, path)
    reshaped = {**state, "audio_feature_map.weight": state["audio_feature_map.weight"].reshape(512, 384)}
    with pytest.raises(JoyVASACheckpointError, match=r"wrong shape/dtype: audio_feature_map.weight \(512, 384\)"):
        load_state_dict_strictly(jv.model, reshaped, path)
    floatmask = {**state, "denoising_net.alignment_mask": state["denoising_net.alignment_mask"].float()}
    with pytest.raises(JoyVASACheckpointError, match="alignment_mask"):
        load_state_dict_strictly(jv.model, floatmask, path)


class Payload:
    """Any class outside the allow-list (a pickle could name os.system the same way)."""


def test_disallowed_global_in_checkpoint(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"args": argparse.Namespace(n_motions=100), "model": {}, "extra": Payload()}, path)
    with pytest.raises(JoyVASACheckpointError, match="refused to unpickle.*Payload"):
        read_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(JoyVASACheckpointError, match="not a JoyVASA motion generator"):
        read_checkpoint(path)


def test_template_unpickler(joyvasa_root, tmp_path):
    good = MotionTemplate.load(joyvasa_root / TEMPLATE_REL)
    assert good.mean_exp.shape == (63,) and good.lo.shape == (7,)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"mean_exp": Payload()}))
    with pytest.raises(JoyVASACheckpointError, match="not allowed"):
        MotionTemplate.load(evil)

    class Shell:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "nothing"),))

    evil.write_bytes(pickle.dumps({"mean_exp": Shell()}))
    with pytest.raises(JoyVASACheckpointError, match="shutil.rmtree is not allowed"):
        MotionTemplate.load(evil)
    short = tmp_path / "short.pkl"
    short.write_bytes((joyvasa_root / TEMPLATE_REL).read_bytes()[:500])
    with pytest.raises(JoyVASACheckpointError, match="truncated"):
        MotionTemplate.load(short)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"mean_exp": np.zeros(63, np.float32)}))
    with pytest.raises(JoyVASACheckpointError, match="entry .min_scale. missing"):
        MotionTemplate.load(partial)


# ------------------------------------------------------------------------------------------------ live source
@pytest.fixture(scope="module")
def tiny() -> JoyVASA:
    return JoyVASA(JoyVASAModel.synthetic(seed=0), MotionTemplate.synthetic())


def stream(source, audio, block):
    rows = []
    for i in range(0, len(audio), block):
        source.push_audio(audio[i : i + block])
        rows.append(source.pull())
    rows.append(source.flush())
    return np.concatenate(rows)


def test_live_defaults_frame_count_and_latency(tiny, speech_16k):
    source = JoyVASAMotionSource(tiny)
    assert (source.window, source.steps, source.latency_ms()) == (25, 10, 960.0)
    for block in (320, 7777):
        source.reset(None)
        rows = stream(source, speech_16k[: 16000 * 3 + 123], block)
        assert rows.shape == (-(-(16000 * 3 + 123) // SAMPLES_PER_FRAME), layout.MOTION_DIM + 1)  # absolute lips
        assert np.isfinite(rows).all()
    assert np.abs(rows[:, layout.EXP]).max() > 0


def test_live_no_frame_depends_on_audio_after_its_window(tiny, speech_16k):
    """Frames of a window depend only on audio up to that window's end (latency = N - 1 frames)."""
    audio = speech_16k[: 16000 * 3].copy()
    a = stream(JoyVASAMotionSource(tiny), audio, 640)
    # the padded stream has 2 silent frames in front: window w covers output frames [25 w - 2, 25 (w + 1) - 2)
    cut_frame = 2 * 25 - 2
    altered = audio.copy()
    altered[cut_frame * SAMPLES_PER_FRAME :] = np.random.default_rng(0).normal(0, 0.3, len(audio) - cut_frame * 640)
    b = stream(JoyVASAMotionSource(tiny), altered, 640)
    assert np.array_equal(a[:cut_frame], b[:cut_frame])
    assert not np.allclose(a[cut_frame:], b[cut_frame:])


def test_live_gains_and_settings(tiny, speech_16k):
    from core.motion.source import MotionSettings

    audio = speech_16k[: 16000 * 2]
    base = stream(JoyVASAMotionSource(tiny), audio, 1600)
    s = MotionSettings(expression_gain=0.5, head_gain=0.0)
    scaled = stream(JoyVASAMotionSource(tiny, settings=s), audio, 1600)
    assert np.allclose(scaled[:, layout.EXP], 0.5 * base[:, layout.EXP], atol=1e-6)
    assert np.abs(scaled[:, 63:70]).max() == 0
    assert np.all(scaled[:, layout.LIP_ABSOLUTE] == 0.5)  # the lips blend like the rest of the expression
    fewer = JoyVASAMotionSource(tiny, settings=MotionSettings(window=10, steps=4))
    assert fewer.latency_ms() == 360.0
    assert len(stream(fewer, audio, 1600)) == len(base)


# ------------------------------------------------------------------------------------------------ every length
PADDING = 1280 + 640  # the wrapper's silence around the clip
SHORT = 10  # frames per window of the stand-in used for the sweeps (same code paths, 10x cheaper than 100)
OFFSETS = (-641, -640, -1, 0, 1, 120, 639, 640, 641)  # samples around a boundary


@pytest.fixture
def short() -> JoyVASA:
    """A stand-in with 10-frame windows; one thread, since tiny ops only pay thread overhead (5x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield JoyVASA(JoyVASAModel.synthetic(seed=1, n_motions=SHORT), MotionTemplate.synthetic())
    torch.set_num_threads(threads)


def official_frames(length: int, n: int) -> tuple[int, int]:
    """JoyVASA's wrapper, restated: (windows, frames) for a padded length L and N-frame windows. Its frame count
    is the float int(L / 16000 * 25), one short of floor(L / 640) at a few multiples of 640."""
    clip_len = int(length / 16000 * 25)
    n_windows = 1 if clip_len <= n else -(-clip_len // n)
    pad = n_windows * n * SAMPLES_PER_FRAME - length
    return n_windows, n * n_windows - (-(-pad // SAMPLES_PER_FRAME) if pad > 0 else 0)


def test_generate_every_length_around_the_window_boundaries(short, speech_16k):
    """The wrapper's window and frame counts at every padded length L around 1, 2 and 3 windows; windows before
    the last one are the same whatever follows (same audio, same noise), so only the last depends on L."""
    per_window = SHORT * SAMPLES_PER_FRAME
    wave = speech_16k[: 3 * per_window + 641]
    reference = None
    for length in sorted((k * per_window + d for k in (1, 2, 3) for d in OFFSETS), reverse=True):
        coef, windows = short.model.generate(wave[: length - PADDING], 2.8, steps=2)
        n_windows, frames = official_frames(length, SHORT)
        assert frames == length // SAMPLES_PER_FRAME or int(length / 16000 * 25) != length // SAMPLES_PER_FRAME
        assert coef.shape == (frames, 73) and len(windows) == n_windows, length
        assert np.isfinite(coef).all()
        reference = reference or [w["motion"] for w in windows]
        for i, w in enumerate(windows[:-1]):
            assert np.array_equal(w["motion"], reference[i]), (length, i)


def test_generate_the_reported_lengths(tiny):
    """62,200 samples (L = 64,120, just past one 100-frame window) failed with "negative dimensions"; at
    L = 128,640 JoyVASA's float frame count gives 2 windows and 200 frames (floor(L / 640) would be 201)."""
    for n, frames, n_windows in ((62_200, 100, 1), (128_640 - PADDING, 200, 2)):
        coef, windows = tiny.model.generate(np.zeros(n, np.float32), steps=1)
        assert coef.shape == (frames, 73) and len(windows) == n_windows == official_frames(n + PADDING, 100)[0]


@pytest.mark.parametrize("native", [True, False])
def test_stream_every_length_around_the_window_boundaries(short, speech_16k, native):
    """The stream owes ceil(n / 640) rows at every length; with native windows (N frames, no audio context) it
    equals generate() minus the two leading silent frames, so streaming and the offline pipeline agree around
    every boundary. Live windows (N / 2 frames, audio context) are swept around their own boundaries."""
    n = SHORT if native else SHORT // 2
    config = JoyVASAConfig(window=n, steps=2, cfg_scale=2.8, audio_context_frames=0 if native else 3)
    per_window = n * SAMPLES_PER_FRAME
    # speech lengths whose stream (1,280 silent samples in front) or padded clip ends around a window boundary
    lengths = [k * per_window - (PADDING if native else 1280) + d for k in (1, 2, 3) for d in OFFSETS]
    wave = speech_16k[: max(lengths)]
    for length in lengths:
        rows = stream(JoyVASAMotionSource(short, config=config), wave[:length], 333)
        assert rows.shape == (-(-length // SAMPLES_PER_FRAME), layout.MOTION_DIM + 1), length
        assert np.isfinite(rows).all()
        if native:
            coef, _ = short.model.generate(wave[:length], 2.8, steps=2)
            post, _ = postprocess(coef, short.template)
            absolute = absolute_rows(post)
            expected = relative_rows(absolute, absolute[0], absolute_lips=True)[2 : 2 + len(rows)]
            assert np.allclose(rows, expected, atol=1e-5), length


# ------------------------------------------------------------------------------------------------ encoding
def test_encoding_recorded_with_the_checkpoint_chosen_and_switched(short, speech_16k):
    from core.motion.joyvasa.model import recorded_encoding
    from core.motion.source import MotionSettings

    path = pathlib.Path("ckpt.pt")
    assert recorded_encoding(argparse.Namespace(), path) is None
    assert recorded_encoding(argparse.Namespace(positional_encoding="fixed"), path) == "fixed"
    recorded_sinus = "ckpt.pt: its args record positional_encoding='sinus', not one of prefix, fixed"
    with pytest.raises(JoyVASACheckpointError, match=recorded_sinus):
        recorded_encoding(argparse.Namespace(positional_encoding="sinus"), path)
    config = JoyVASAConfig(window=SHORT, steps=2)
    assert JoyVASAMotionSource(short, config=config).positional_encoding == "prefix"  # nothing recorded
    recorded = JoyVASA(short.model, short.template, recorded_encoding="fixed")
    assert JoyVASAMotionSource(recorded, config=config).positional_encoding == "fixed"
    chosen = JoyVASAMotionSource(recorded, MotionSettings(joyvasa_encoding="prefix"), config)
    assert chosen.positional_encoding == "prefix"  # the user's choice wins over the record
    audio = speech_16k[:16000]
    prefix = stream(chosen, audio, 1600)
    chosen.configure(MotionSettings(joyvasa_encoding="fixed"))  # live switch, same weights
    chosen.reset(None)
    fixed = stream(chosen, audio, 1600)
    assert prefix.shape == fixed.shape and not np.allclose(prefix, fixed, atol=1e-3)
    with pytest.raises(ValueError, match="'sinus' is not one of prefix, fixed"):
        chosen.configure(MotionSettings(joyvasa_encoding="sinus"))


def test_cli_joyvasa_encoding(tmp_path, monkeypatch, speech_16k, astronaut):
    """`python -m core render --joyvasa-encoding fixed|prefix` reaches the denoiser (stand-in model)."""
    import cv2

    from core.__main__ import main as core_main
    from core.audio.io import save_wav

    monkeypatch.setenv("HEADCAST_WEIGHTS_DIR", str(tmp_path / "weights"))  # no JoyVASA files: the stand-in
    wav, png = tmp_path / "a.wav", tmp_path / "p.png"
    save_wav(wav, speech_16k[:8000], 16000)
    cv2.imwrite(str(png), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dumps = {}
        for enc in ("prefix", "fixed"):
            dumps[enc] = tmp_path / f"{enc}.npz"
            assert core_main(["render", "--portrait", str(png), "--audio", str(wav), "--synthetic-weights", "tiny",
                              "--motion", "joyvasa", "--joyvasa-encoding", enc, "--dump-motion", str(dumps[enc])]) == 0
    finally:
        torch.set_num_threads(threads)
    a, b = (np.load(dumps[e])["motion"] for e in ("prefix", "fixed"))
    assert a.shape == b.shape == (13, layout.MOTION_DIM + 1) and not np.allclose(a, b, atol=1e-3)
    with pytest.raises(SystemExit):
        core_main(["render", "--portrait", str(png), "--audio", str(wav), "--joyvasa-encoding", "sinus"])


def test_stand_ins_leave_the_global_rng_alone(short, speech_16k):
    """Stand-in models and sources draw from local generators: the caller's global RNG state is untouched, and
    the same seed gives the same stand-in."""
    from core.audio.features import AudioFeatureExtractor

    state = torch.random.get_rng_state()
    a = JoyVASAModel.synthetic(seed=4, n_motions=SHORT)
    AudioFeatureExtractor.from_config(AudioFeatureExtractor.small_config(hidden=32, layers=1), seed=4)
    source = JoyVASAMotionSource(JoyVASA(a, MotionTemplate.synthetic()), config=JoyVASAConfig(window=SHORT, steps=1))
    stream(source, speech_16k[:8000], 4000)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = JoyVASAModel.synthetic(seed=4, n_motions=SHORT)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert source.last_window_ms > 0


@pytest.mark.parametrize("command", ["core.offline", "core.live"])
def test_render_and_live_take_the_encoding(command):
    """Both commands get `--joyvasa-encoding` from the shared pipeline arguments; it reaches MotionSettings."""
    import importlib

    from core.cli_args import motion_settings

    parser = argparse.ArgumentParser()
    importlib.import_module(command).add_arguments(parser)
    base = ["--portrait", "p.png"] + (["--audio", "a.wav"] if command == "core.offline" else [])
    assert motion_settings(parser.parse_args(base)).joyvasa_encoding is None  # the checkpoint's own
    assert motion_settings(parser.parse_args(base + ["--joyvasa-encoding", "fixed"])).joyvasa_encoding == "fixed"
