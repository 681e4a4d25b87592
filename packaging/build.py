"""`python packaging/build.py [--gpu]` (or `make dist`): build the self-contained Headcast desktop bundle.

Runs PyInstaller on packaging/headcast.spec with the Python environment it is started from (that environment
decides CPU or CUDA torch: see docs/PACKAGING.md), then adds the per-OS extras, checks the result and packs it:

- Linux:   dist/headcast/ (executable `headcast`, `headcast.desktop`, icon, `install-desktop-entry.sh`) and
           dist/headcast-VERSION-linux-ARCH-cpu|gpu.tar.gz
- Windows: dist/headcast/ (`headcast.exe` without a console, `headcast-cli.exe` with one) and a .zip
- macOS:   dist/Headcast.app (MPS is the default device there) and a .zip made with `ditto`

The checks fail the build (exit 1) when the bundle carries test folders, a Qt plugin twice, or, in the CPU
build, any CUDA library. The figures (folder and archive size, build time) are printed and written to
dist/bundle-info.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "headcast.spec"
LINUX_FILES = ROOT / "packaging" / "linux"
NAME = "headcast"
ICON_PX = 256
CUDA_LIB = re.compile(r"(^|/)(lib)?(cudart|cublas|cublasLt|cudnn|cufft|curand|cusolver|cusparse|nccl|nvrtc|"
                      r"nvJitLink|cupti|onnxruntime_providers_cuda|onnxruntime_providers_tensorrt)[^/]*"
                      r"\.(so[.0-9]*|dll|dylib)$")


class BuildError(RuntimeError):
    """A problem that stops the build; the message names it and the fix."""


def os_tag() -> str:
    return {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)


def check_environment(gpu: bool) -> dict[str, str]:
    """The environment must match the variant: the bundle copies whatever torch/onnxruntime is installed."""
    try:
        import PyInstaller  # noqa: F401
        import torch
    except ModuleNotFoundError as exc:
        raise BuildError(f"{exc.name} is not installed in {sys.executable}: run "
                         "`pip install -e '.[cpu,bundle]'` (or `make dist`, which does it).") from None
    ort = {d: v for d in ("onnxruntime", "onnxruntime-gpu") if (v := _version(d))}
    cuda = torch.version.cuda
    if gpu:
        if sys.platform == "darwin":
            raise BuildError("--gpu is for NVIDIA GPUs (Linux/Windows); on macOS the standard build already "
                             "uses the Apple GPU (MPS).")
        if not cuda:
            raise BuildError(f"--gpu needs a CUDA build of torch, but {sys.executable} has torch "
                             f"{torch.__version__} (CPU). Make a separate environment: see docs/PACKAGING.md, "
                             "'GPU build'.")
        if "onnxruntime-gpu" not in ort or "onnxruntime" in ort:
            raise BuildError("--gpu needs onnxruntime-gpu and not onnxruntime (both install into one folder): "
                             "`pip uninstall -y onnxruntime && pip install onnxruntime-gpu`.")
    else:
        if cuda:
            raise BuildError(f"the CPU bundle needs the CPU build of torch, but {sys.executable} has torch "
                             f"{torch.__version__} (CUDA {cuda}): use an environment with torch==2.13.0 CPU, "
                             "or pass --gpu.")
        if "onnxruntime-gpu" in ort:
            raise BuildError("the CPU bundle needs onnxruntime, not onnxruntime-gpu: "
                             "`pip uninstall -y onnxruntime-gpu && pip install onnxruntime`.")
    return {"torch": torch.__version__, "cuda": cuda or "none", **ort}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def render_icon(svg: Path, png: Path, size: int = ICON_PX) -> Path:
    """The SVG app icon as a PNG (menus, and PyInstaller's .ico/.icns conversion), drawn with Qt's own SVG
    renderer so no extra tool is needed."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 (QPainter needs an application)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise BuildError(f"cannot read the icon {svg}: is resources/icons/headcast.svg intact?")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    png.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(png)):
        raise BuildError(f"cannot write {png}")
    return png


def run_pyinstaller(dist: Path, work: Path, gpu: bool, icon: Path, clean: bool) -> None:
    env = dict(os.environ, HEADCAST_BUNDLE_VARIANT="gpu" if gpu else "cpu", HEADCAST_BUNDLE_ICON=str(icon),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    if clean:
        cmd.insert(3, "--clean")
    print("build:", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise BuildError("PyInstaller failed (its messages are above).")


def strip_torch(folder: Path) -> int:
    """Linux: torch's wheels ship their libraries with full symbol tables; `strip --strip-unneeded` keeps the
    dynamic symbols that loading needs and drops the rest (libtorch_cpu.so 434 -> 345 MB, measured). Other
    wheels' libraries are already stripped. Returns the bytes saved (0 without binutils' `strip`)."""
    strip = shutil.which("strip")
    libs = sorted((folder / "_internal" / "torch" / "lib").glob("*.so*"))
    if strip is None or not libs:
        print("build: `strip` not found (binutils): torch's libraries stay unstripped (+~100 MB)")
        return 0
    before = sum(p.stat().st_size for p in libs)
    subprocess.run([strip, "--strip-unneeded", *map(str, libs)], check=True)
    return before - sum(p.stat().st_size for p in libs)


def add_linux_files(folder: Path, icon_png: Path) -> None:
    """Menu entry, icon and the script that installs both for the current user."""
    shutil.copy2(LINUX_FILES / "headcast.desktop", folder / "headcast.desktop")
    shutil.copy2(LINUX_FILES / "install-desktop-entry.sh", folder / "install-desktop-entry.sh")
    (folder / "install-desktop-entry.sh").chmod(0o755)
    shutil.copy2(ROOT / "resources" / "icons" / "headcast.svg", folder / "headcast.svg")
    shutil.copy2(icon_png, folder / "headcast.png")


def check_bundle(folder: Path, gpu: bool) -> list[str]:
    """What must not be in a bundle; each problem is one line naming the files."""
    problems: list[str] = []
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    tests = sorted({m.group(0) for f in files if (m := re.search(r".*?(^|/)tests?/", f))})
    if tests:
        problems.append(f"test folders in the bundle: {', '.join(tests[:5])}")
    if not gpu:
        cuda = [f for f in files if CUDA_LIB.search(f)]
        if cuda:
            problems.append(f"CUDA libraries in the CPU bundle: {', '.join(cuda[:5])}")
    plugins: dict[str, list[str]] = defaultdict(list)
    for f in files:
        m = re.search(r"(?:^|/)plugins/([^/]+/[^/]+)$", f)
        if m and "/Qt" in "/" + f:
            plugins[m.group(1)].append(f)
    twice = [f"{k} ({len(v)}x)" for k, v in plugins.items() if len(v) > 1]
    if twice:
        problems.append(f"Qt plugins bundled more than once: {', '.join(twice[:5])}")
    return problems


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def make_archive(target: Path, dist: Path, stem: str) -> Path:
    """Linux: .tar.gz (keeps the executable bit and symlinks); Windows: .zip; macOS: ditto .zip of the .app."""
    if sys.platform == "darwin":
        out = dist / f"{stem}.zip"
        subprocess.run(["ditto", "-c", "-k", "--keepParent", str(target), str(out)], check=True)
    elif sys.platform == "win32":
        out = Path(shutil.make_archive(str(dist / stem), "zip", root_dir=dist, base_dir=target.name))
    else:
        out = dist / f"{stem}.tar.gz"
        tmp = out.with_suffix(".gz.partial")
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:  # level 9 costs ~2x the time for ~1% size
            tar.add(target, arcname=target.name)
        tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="CUDA torch + onnxruntime-gpu (Linux/Windows; needs an "
                   "environment that has them, see docs/PACKAGING.md)")
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder")
    p.add_argument("--clean", action="store_true", help="discard PyInstaller's cache first")
    p.add_argument("--no-archive", action="store_true", help="only the folder (faster; the tests use it)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        versions = check_environment(args.gpu)
        icon = render_icon(ROOT / "resources" / "icons" / "headcast.svg", args.work / "headcast.png")
        run_pyinstaller(args.dist, args.work, args.gpu, icon, args.clean)
        folder = args.dist / NAME
        target = args.dist / "Headcast.app" if sys.platform == "darwin" else folder
        if sys.platform == "linux":
            saved = strip_torch(folder)
            print(f"build: stripping torch's libraries saved {saved / 2**20:.0f} MB")
            add_linux_files(folder, icon)
        problems = check_bundle(folder, args.gpu)
        if problems:
            raise BuildError("the bundle is not clean:\n  " + "\n  ".join(problems))
        build_s = time.monotonic() - t0
        version = md.version("headcast") if _version("headcast") else "dev"
        stem = f"{NAME}-{version}-{os_tag()}-{platform.machine().lower()}-{'gpu' if args.gpu else 'cpu'}"
        archive = None if args.no_archive else make_archive(target, args.dist, stem)
    except BuildError as exc:
        print(f"build: error: {exc}", file=sys.stderr)
        return 1
    info = {"variant": "gpu" if args.gpu else "cpu", "os": os_tag(), "folder": str(target),
            "folder_mb": round(folder_bytes(folder) / 2**20, 1), "build_s": round(build_s, 1),
            "archive": str(archive) if archive else None,
            "archive_mb": round(archive.stat().st_size / 2**20, 1) if archive else None,
            "total_s": round(time.monotonic() - t0, 1), **versions}
    (args.dist / "bundle-info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"build: {target} ({info['folder_mb']} MB) in {info['build_s']} s"
          + (f"; archive {archive.name} ({info['archive_mb']} MB), {info['total_s']} s in all" if archive else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
