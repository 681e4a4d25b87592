"""The weights registry: missing files name the fix, imports verify checksums, nothing half-installed."""

from __future__ import annotations

import hashlib

import pytest

from core.__main__ import main as core_main
from core.weights import MODELS, MissingWeightsError, WeightFile, WeightsChecksumError, WeightsRegistry


def test_missing_file_names_the_command(tmp_path):
    reg = WeightsRegistry(tmp_path)
    with pytest.raises(MissingWeightsError, match=r"python -m core weights download liveportrait"):
        reg.path("liveportrait")
    assert not reg.installed("liveportrait")


def test_import_copies_the_upstream_layout(tmp_path):
    src = tmp_path / "pretrained_weights"
    for f in MODELS["liveportrait"].files:
        (src / f.local).parent.mkdir(parents=True, exist_ok=True)
        (src / f.local).write_bytes(f.local.encode())
    reg = WeightsRegistry(tmp_path / "root")
    assert len(reg.import_dir(tmp_path)) == 5  # finds them under pretrained_weights/
    assert reg.installed("liveportrait") and reg.path("liveportrait") == tmp_path / "root"
    state, reason = reg.check(MODELS["liveportrait"].files[2], deep=True)  # these bytes are no checkpoint
    assert state == "damaged" and "not a complete PyTorch checkpoint" in reason


def test_checksum_mismatch_is_refused_and_nothing_installed(tmp_path, monkeypatch):
    good = b"the published bytes"
    f = WeightFile("x/y", "m.bin", "m/m.bin", hashlib.sha256(good).hexdigest())
    reg = WeightsRegistry(tmp_path / "root")
    bad = tmp_path / "m.bin"
    bad.write_bytes(b"truncated")
    with pytest.raises(WeightsChecksumError, match=r"m/m.bin: sha256 does not match.*Kept aside"):
        reg._install(f, bad, move=True)
    assert not (tmp_path / "root" / "m/m.bin").exists() and (tmp_path / "m.bin.bad").exists()
    bad.write_bytes(good)
    reg._install(f, bad, move=True)
    assert (tmp_path / "root" / "m/m.bin").read_bytes() == good


def test_cli_import_and_verify_exit_codes(tmp_path, capsys):
    src = tmp_path / "src" / "JoyVASA" / "motion_template"
    src.mkdir(parents=True)
    (src / "motion_template.pkl").write_bytes(b"not the real template")
    root = tmp_path / "root"
    assert core_main(["weights", "--root", str(root), "import", str(tmp_path / "src")]) == 2
    assert "sha256 does not match" in capsys.readouterr().err
    assert not (root / "JoyVASA").exists()
    # a damaged file already in place is reported by verify with a non-zero exit
    target = root / "JoyVASA/motion_template/motion_template.pkl"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"damaged")
    assert core_main(["weights", "--root", str(root), "verify"]) == 1
    assert "damaged JoyVASA/motion_template/motion_template.pkl  (sha256 differs" in capsys.readouterr().out


def test_offline_download_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert core_main(["weights", "--root", str(tmp_path), "download", "liveportrait"]) == 2
    err = capsys.readouterr().err
    assert "weights import DIR" in err
    assert not any(p.is_file() and not p.name.startswith(".") for p in tmp_path.rglob("*.pth"))


def test_verify_checks_every_key_and_shape_and_calls_truncated_files_damaged(tmp_path, liveportrait_root, capsys):
    """The kit's official-size stand-ins pass; a truncated copy, a tiny model and a missing key do not."""
    import shutil

    import torch

    root = tmp_path / "w"
    shutil.copytree(liveportrait_root / "liveportrait", root / "liveportrait")
    reg = WeightsRegistry(root)
    rows = {local: (state, reason) for local, state, reason in reg.verify()}
    assert all(rows[f.local] == ("ok", "") for f in MODELS["liveportrait"].files), rows
    warping = root / "liveportrait/base_models/warping_module.pth"
    warping.write_bytes(warping.read_bytes()[: warping.stat().st_size // 2])  # an interrupted download
    spade = root / "liveportrait/base_models/spade_generator.pth"
    state = torch.load(spade, weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, spade)
    retarget = root / "liveportrait/retargeting_models/stitching_retargeting_module.pth"
    groups = torch.load(retarget, weights_only=True)
    key = next(iter(groups["retarget_eye"]))
    groups["retarget_eye"][key] = torch.zeros(3, 3)  # another model's layer
    torch.save(groups, retarget)
    assert core_main(["weights", "--root", str(root), "verify"]) == 1
    out = capsys.readouterr().out
    assert "damaged liveportrait/base_models/warping_module.pth  (not a complete PyTorch checkpoint" in out
    assert "damaged liveportrait/base_models/spade_generator.pth  (the file does not match" in out
    assert "missing key(s)" in out and "[retarget_eye]" in out and "has shape (3, 3)" in out
    assert "ok      liveportrait/base_models/motion_extractor.pth" in out and "present" not in out
    assert "miniz" not in out


def test_verify_never_executes_code_from_a_file(tmp_path):
    import pickle
    import zipfile

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    f = MODELS["liveportrait"].files[0]
    path = tmp_path / f.local
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as z:  # torch.save's layout with a hostile pickle inside
        z.writestr("archive/data.pkl", pickle.dumps(Evil()))
        z.writestr("archive/version", "3\n")
    state, reason = WeightsRegistry(tmp_path).check(f, deep=True)
    assert state == "damaged" and "not loaded (that could run code)" in reason
    assert not marker.exists()


def test_download_without_network_is_one_fast_plain_error(tmp_path, capsys, monkeypatch):
    """Name resolution fails at once offline; one attempt, no retries, no raw URLError, nothing left behind."""
    import time

    import core.weights as weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://no-such-host.invalid")
    t0 = time.perf_counter()
    assert core_main(["weights", "--root", str(tmp_path), "download"]) == 2
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot download liveportrait/base_models/appearance_feature_extractor.pth: "
                          "cannot find no-such-host.invalid: this computer seems to be offline")
    assert "weights import DIR" in err and "URLError" not in err and len(err.splitlines()) == 1
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    print(f"offline download failed after {seconds:.2f} s")  # measured 0.0x s here; was ~30 s of retries
    assert weights.TIMEOUT_S <= 15
