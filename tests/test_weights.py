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
    assert ("liveportrait/base_models/warping_module.pth", "present") in reg.verify()


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
    assert "BAD" in capsys.readouterr().out


def test_offline_download_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert core_main(["weights", "--root", str(tmp_path), "download", "liveportrait"]) == 2
    err = capsys.readouterr().err
    assert "weights import DIR" in err
    assert not any(p.is_file() and not p.name.startswith(".") for p in tmp_path.rglob("*.pth"))
