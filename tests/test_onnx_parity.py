"""ONNX export parity: every exported LivePortrait network, run by onnxruntime on the CPU, gives the numbers the
official code gives on the parity kit (the kit's own tolerance), and the export cache is keyed and atomic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.backends.onnx_export import MOTION_KEYS, NETWORKS, ExportSettings, export_network, export_path
from core.backends.ort import OrtNetwork
from core.liveportrait import LivePortraitConfig, build_liveportrait, load_liveportrait
from tests.helpers import assert_close

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def kit_models(liveportrait_root):
    torch.set_num_threads(2)
    return load_liveportrait(liveportrait_root)


@pytest.fixture(scope="module")
def exported(kit_models, tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx-cache")
    return {name: export_network(kit_models, name, cache_dir=cache) for name in NETWORKS}


def run(path, *arrays) -> tuple[np.ndarray, ...]:
    outs = OrtNetwork(path, CPU)(*(torch.from_numpy(np.asarray(a)) for a in arrays))
    return tuple(o.clone().numpy() for o in outs)


def test_appearance_feature_extractor_onnx(exported, parity_vectors):
    (out,) = run(exported["appearance_feature_extractor"], parity_vectors["appearance_feature_extractor/in/x"])
    assert_close(out, parity_vectors["appearance_feature_extractor/out/feature_3d"], "onnx feature_3d")


def test_motion_extractor_onnx(exported, parity_vectors):
    outs = run(exported["motion_extractor"], parity_vectors["motion_extractor/in/x"])
    for key, out in zip(MOTION_KEYS, outs):
        assert_close(out, parity_vectors[f"motion_extractor/out/{key}"], f"onnx motion_extractor/{key}")


@pytest.mark.slow
def test_warping_module_onnx(exported, parity_vectors):
    v = parity_vectors
    outs = run(exported["warping_module"], v["warping_module/in/feature_3d"], v["warping_module/in/kp_driving"],
               v["warping_module/in/kp_source"])
    for key, out in zip(("out", "occlusion_map", "deformation"), outs):
        assert_close(out, v[f"warping_module/out/{key}"], f"onnx warping_module/{key}")


@pytest.mark.slow
def test_spade_generator_onnx(exported, parity_vectors):
    (out,) = run(exported["spade_generator"], parity_vectors["spade_generator/in/feature"])
    assert_close(out, parity_vectors["spade_generator/out/out"], "onnx spade_generator/out")


@pytest.mark.parametrize("name", ["stitching", "lip", "eye"])
def test_retargeting_mlps_onnx(exported, parity_vectors, name):
    (out,) = run(exported[name], parity_vectors[f"stitching_retargeting_module/in/{name}"])
    assert_close(out, parity_vectors[f"stitching_retargeting_module/out/{name}"], f"onnx {name}")


def test_batch_axis_is_dynamic_and_warp_broadcasts_one_volume(tmp_path):
    """Batch 3 through graphs exported at batch 1 / 2; one feature volume for three keypoint sets equals the
    torch warping network fed three copies (what the renderer relies on to send the volume once)."""
    models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    gen = torch.Generator().manual_seed(1)
    feature = torch.rand(1, 8, 4, 16, 16, generator=gen)
    kp_s = torch.rand(3, 21, 3, generator=gen) - 0.5
    kp_d = kp_s + 0.05 * torch.randn(3, 21, 3, generator=gen)
    warp = OrtNetwork(export_network(models, "warping_module", cache_dir=tmp_path), CPU)
    got = [o.clone() for o in warp(feature, kp_d, kp_s)]
    assert not any(m.training for m in models.warping_module.modules()), \
        "the export switched the network to training mode (BatchNorm would use batch statistics)"
    with torch.no_grad():
        ref = models.warping_module(feature.expand(3, -1, -1, -1, -1), kp_d, kp_s)
    for key, out in zip(("out", "occlusion_map", "deformation"), got):
        assert_close(out, ref[key], f"batch-3 {key}", max_abs=1e-4, rel_l2=1e-5)
    gen_net = OrtNetwork(export_network(models, "spade_generator", cache_dir=tmp_path), CPU)
    (image,) = gen_net(ref["out"])
    with torch.no_grad():
        assert_close(image, models.spade_generator(ref["out"]), "batch-3 image", max_abs=1e-4, rel_l2=1e-5)


def test_export_cache_is_keyed_by_weights_and_settings(tmp_path):
    models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    first = export_network(models, "eye", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert export_network(models, "eye", cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp, "a cached export must be reused, not rewritten"
    assert export_path(models, "eye", ExportSettings(opset=21), tmp_path) != first
    with torch.no_grad():
        models.eye.mlp[0].bias[0] += 1.0
    changed = export_network(models, "eye", cache_dir=tmp_path)
    assert changed != first and changed.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, changed.name]), \
        "the export must leave no temporary files behind"


def test_models_loaded_from_a_root_cache_exports_beside_the_weights(liveportrait_root, kit_models):
    from core.backends.onnx_export import cache_dir_for

    assert cache_dir_for(kit_models) == liveportrait_root / "liveportrait" / "onnx"


def test_export_of_another_code_version_is_replaced_and_pruned(tmp_path, monkeypatch):
    """A fixed network (new code, same weights) gets a new export; the stale one is deleted, other weights' kept."""
    import core.backends.onnx_export as onnx_export

    models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    other = build_liveportrait(LivePortraitConfig.tiny(), seed=1)
    old = export_network(models, "eye", cache_dir=tmp_path)
    other_weights = export_network(other, "eye", cache_dir=tmp_path)
    monkeypatch.setattr(onnx_export, "code_digest", lambda: "f" * 64)  # the networks' source changed
    new = export_network(models, "eye", cache_dir=tmp_path)
    assert new != old and new.is_file()
    assert not old.exists() and not other_weights.exists()  # made by the old code: never usable again
    again = export_network(other, "eye", cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, again.name])
