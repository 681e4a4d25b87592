"""The loader reads the official layout strictly and names what is wrong with a bad file."""

from __future__ import annotations

import shutil

import pytest
import torch

from core.liveportrait import (
    CheckpointError,
    KeypointInfo,
    LivePortraitConfig,
    build_liveportrait,
    load_liveportrait,
    save_liveportrait,
)
from core.liveportrait.loader import BASE_MODELS, RETARGETING_FILE


@pytest.fixture()
def bad_root(liveportrait_root, tmp_path):
    """A writable copy of the kit's tree: symlinks for the big files, so a test can replace one file."""
    for rel in (*BASE_MODELS.values(), RETARGETING_FILE):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(liveportrait_root / rel)
    return tmp_path


def _replace(root, rel, state):
    path = root / rel
    path.unlink()
    torch.save(state, path)
    return path


def _small_appearance_state(parity_kit):
    return parity_kit.build_checkpoint(parity_kit.load_manifest(), "appearance_feature_extractor")


def test_renamed_key_is_named(bad_root, parity_kit):
    state = _small_appearance_state(parity_kit)
    state["first.conv.weightt"] = state.pop("first.conv.weight")
    _replace(bad_root, BASE_MODELS["appearance_feature_extractor"], state)
    with pytest.raises(CheckpointError, match=r"appearance_feature_extractor\.pth.*first\.conv\.weight"):
        load_liveportrait(bad_root)


def test_reshaped_tensor_is_named(bad_root, parity_kit):
    state = _small_appearance_state(parity_kit)
    state["second.bias"] = torch.zeros(7)
    _replace(bad_root, BASE_MODELS["appearance_feature_extractor"], state)
    with pytest.raises(CheckpointError, match=r"second\.bias' has shape \(7,\), expected \(512,\)"):
        load_liveportrait(bad_root)


def test_missing_file_is_named(bad_root):
    (bad_root / BASE_MODELS["warping_module"]).unlink()
    with pytest.raises(CheckpointError, match=r"not found: .*warping_module\.pth.*python -m core weights"):
        load_liveportrait(bad_root)


def test_corrupt_file_is_named(bad_root):
    path = bad_root / BASE_MODELS["spade_generator"]
    path.unlink()
    path.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(CheckpointError, match=r"Cannot read .*spade_generator\.pth"):
        load_liveportrait(bad_root)


def test_deleted_key_is_named(bad_root, parity_kit):
    state = _small_appearance_state(parity_kit)
    del state["resblocks_3d.3dr5.norm2.running_var"]
    _replace(bad_root, BASE_MODELS["appearance_feature_extractor"], state)
    name = r"appearance_feature_extractor\.pth.*missing key.*3dr5\.norm2\.running_var"
    with pytest.raises(CheckpointError, match=name):
        load_liveportrait(bad_root)


@pytest.mark.parametrize("content", [torch.zeros(3), [1, 2, 3], {"model": {"a": 1}}], ids=["tensor", "list", "nested"])
def test_non_checkpoint_file_is_named(bad_root, content):
    path = _replace(bad_root, BASE_MODELS["motion_extractor"], content)
    with pytest.raises(CheckpointError, match=rf"{path.name} is not a LivePortrait state dict.*weights download"):
        load_liveportrait(bad_root)


def test_empty_file_is_named(bad_root):
    path = bad_root / RETARGETING_FILE
    path.unlink()
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"Cannot read .*stitching_retargeting_module\.pth"):
        load_liveportrait(bad_root)


def test_wrong_shape_inside_a_retargeting_group_is_named(bad_root, liveportrait_root):
    groups = torch.load(liveportrait_root / RETARGETING_FILE, weights_only=True)
    groups["retarget_eye"]["module.mlp.10.weight"] = torch.zeros(63, 65)
    _replace(bad_root, RETARGETING_FILE, groups)
    with pytest.raises(CheckpointError, match=r"\[retarget_eye\].*mlp\.10\.weight' has shape \(63, 65\)"):
        load_liveportrait(bad_root)


def test_module_prefix_on_base_model_is_refused(bad_root, parity_kit):
    """Base models are bare state dicts; a DDP-prefixed file is a different export and is named as such."""
    state = {f"module.{k}": v for k, v in _small_appearance_state(parity_kit).items()}
    _replace(bad_root, BASE_MODELS["appearance_feature_extractor"], state)
    with pytest.raises(CheckpointError, match=r"module\.' prefix"):
        load_liveportrait(bad_root)


def test_retargeting_groups_load_with_or_without_prefix(bad_root, liveportrait_root):
    groups = torch.load(liveportrait_root / RETARGETING_FILE, weights_only=True)
    assert all(k.startswith("module.") for g in groups.values() for k in g)
    plain = {g: {k.removeprefix("module."): v for k, v in sd.items()} for g, sd in groups.items()}
    _replace(bad_root, RETARGETING_FILE, plain)
    models = load_liveportrait(bad_root)
    assert torch.equal(models.lip.mlp[0].weight, groups["retarget_mouth"]["module.mlp.0.weight"])
    del plain["retarget_eye"]
    _replace(bad_root, RETARGETING_FILE, plain)
    with pytest.raises(CheckpointError, match="retarget_eye"):
        load_liveportrait(bad_root)


def test_official_checkpoint_into_tiny_config_fails_clearly(liveportrait_root):
    with pytest.raises(CheckpointError, match="Wrong model size"):
        load_liveportrait(liveportrait_root, LivePortraitConfig.tiny())


def test_tiny_roundtrip_through_official_layout(tmp_path):
    cfg = LivePortraitConfig.tiny()
    models = build_liveportrait(cfg, seed=3)
    save_liveportrait(models, tmp_path)
    again = load_liveportrait(tmp_path, cfg)
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for m in (models, again):
            f = m.appearance_feature_extractor(x)
            x_s = KeypointInfo.from_motion(m.motion_extractor(x)).transformed()
            m.result = m.spade_generator(m.warping_module(f, x_s * 1.05, x_s)["out"])
    assert models.result.shape == (2, 3, 128, 128)
    assert torch.equal(models.result, again.result)
    shutil.rmtree(tmp_path)


def test_seeded_stand_ins_are_deterministic():
    a = build_liveportrait(LivePortraitConfig.tiny(), seed=1).spade_generator.fc.weight
    b = build_liveportrait(LivePortraitConfig.tiny(), seed=1).spade_generator.fc.weight
    c = build_liveportrait(LivePortraitConfig.tiny(), seed=2).spade_generator.fc.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_models_are_eval_frozen_and_convert_dtype():
    models = build_liveportrait(LivePortraitConfig.tiny(), seed=0)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = models.motion_extractor(x)["kp"]
        models.to("cpu", torch.float64)
        got = models.motion_extractor(x.double())["kp"]
    for name, module in models.modules().items():
        assert not module.training, name
        assert all(not p.requires_grad and p.dtype == torch.float64 for p in module.parameters()), name
    assert got.dtype == torch.float64
    assert torch.allclose(got.float(), ref, atol=1e-4)
