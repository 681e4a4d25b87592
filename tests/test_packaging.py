"""pip/pipx packaging: a built wheel carries the icons and the style sheet and declares what the code imports;
the `headcast` command also runs the `core` command line; the bundle build's checks catch what they claim to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ICONS = sorted(p.name for p in (REPO / "resources" / "icons").glob("*.svg"))


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of this tree (setuptools writes build/ and egg-info next to the sources)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", "build", "dist", ".git", "tests")
    shutil.copytree(REPO, src, ignore=ignore)
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (found,) = out.glob("headcast-*.whl")
    return found


def test_wheel_carries_icons_and_style(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert ICONS, "no icons in resources/icons"
    for icon in ICONS:
        assert f"resources/icons/{icon}" in names
    assert "resources/styles/headcast.qss" in names
    assert "resources/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_metadata_declares_imports_and_command(wheel):
    z = zipfile.ZipFile(wheel)
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip().lower() for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    for dist in ("scipy", "torch", "pyside6-essentials", "qasync", "av", "opencv-python-headless"):
        assert any(r.startswith(dist) for r in requires), f"{dist} not declared: {requires}"
    entry_points = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "headcast = app.__main__:main" in entry_points


def test_installed_wheel_finds_its_resources(wheel, tmp_path):
    """Installed outside the source tree, the package data is found through importlib.resources."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import resources, sys; p = resources.resource_path('icons', 'headcast.svg'); "
            "q = resources.resource_path('styles', 'headcast.qss'); print(p); print(q); "
            "print(resources.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    icon, qss, module = proc.stdout.split()
    for path in (icon, qss, module):
        assert Path(path).is_relative_to(target), f"{path} is not from the installed wheel"
    assert Path(icon).read_text(encoding="utf-8").lstrip().startswith("<")
    assert Path(qss).stat().st_size > 0


def test_missing_resource_names_the_file_and_the_fix():
    import resources

    with pytest.raises(FileNotFoundError, match=r"icons/nope\.svg.*reinstall"):
        resources.resource_path("icons", "nope.svg")


def test_headcast_command_runs_the_core_cli():
    """`headcast render ...` is `python -m core render ...`: the bundle's one executable serves both."""
    env = _clean_env(PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "app", "render", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--portrait" in proc.stdout and "--audio" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "app", "core", "no-such-command"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_smoke_test_without_a_portrait_fails_with_the_fix(tmp_path):
    env = _clean_env(PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", HEADCAST_CONFIG_DIR=str(tmp_path / "c"),
                     HEADCAST_DATA_DIR=str(tmp_path / "d"))
    proc = subprocess.run([sys.executable, "-m", "app", "--synthetic-weights", "tiny", "--smoke-test", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "smoke: window shown" in proc.stdout
    assert "no portrait in the library: pass a photo" in proc.stderr


def _load_build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("headcast_build", REPO / "packaging" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_checks_catch_tests_cuda_and_duplicate_plugins(tmp_path):
    build = _load_build()
    root = tmp_path / "headcast"
    files = ["headcast", "_internal/torch/lib/libtorch_cpu.so", "_internal/PySide6/Qt/plugins/platforms/libqxcb.so"]
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"x")
    assert build.check_bundle(root, gpu=False) == []
    bad = ["_internal/scipy/linalg/tests/test_x.py", "_internal/nvidia/cublas/lib/libcublas.so.12",
           "_internal/PyQt/Qt/plugins/platforms/libqxcb.so"]
    for f in bad:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"x")
    problems = "\n".join(build.check_bundle(root, gpu=False))
    assert "test folders" in problems and "scipy/linalg/tests/" in problems
    assert "CUDA libraries" in problems and "libcublas.so.12" in problems
    assert "platforms/libqxcb.so (2x)" in problems
    assert "CUDA" not in "\n".join(build.check_bundle(root, gpu=True))


def test_linux_archive_keeps_the_executable_bit(tmp_path):
    import tarfile

    build = _load_build()
    folder = tmp_path / "headcast"
    folder.mkdir()
    (folder / "headcast").write_text("#!/bin/sh\n")
    (folder / "headcast").chmod(0o755)
    out = build.make_archive(folder, tmp_path, "headcast-test") if sys.platform == "linux" else None
    if out is None:
        pytest.skip("the .tar.gz archive is the Linux branch")
    with tarfile.open(out) as tar:
        member = tar.getmember("headcast/headcast")
    assert member.mode & 0o111
