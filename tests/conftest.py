"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is forced here."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Ctrl-C tests send SIGINT to the processes they start. A suite started in the background of a non-interactive shell
# (`cmd &`, nohup) inherits SIGINT as *ignored*, every child then ignores it too and Python installs no
# KeyboardInterrupt handler: those tests would hang on a Ctrl-C that never arrives. Caught, not ignored, it is reset
# to the default in every child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hermetic user folders: a test run (and every subprocess it starts) never reads or writes the developer's own
# settings, portrait library, caches (atlases, ONNX exports, remembered speeds) or installed weights, so a result
# cannot depend on what an earlier run or real use left there. Tests that need a folder of their own set it.
_USER_DIRS = tempfile.mkdtemp(prefix="headcast-tests-")
atexit.register(shutil.rmtree, _USER_DIRS, ignore_errors=True)
for _var, _sub in (("HEADCAST_CONFIG_DIR", "config"), ("HEADCAST_DATA_DIR", "data"), ("HEADCAST_CACHE_DIR", "cache"),
                   ("HEADCAST_WEIGHTS_DIR", "weights")):
    os.environ[_var] = os.path.join(_USER_DIRS, _sub)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HEADCAST_SHARED", REPO.parent / "shared"))
PARITY_KIT = SHARED / "parity"
JOYVASA_KIT = SHARED / "joyvasa-parity"


def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _require_kit(kit: Path):
    """In CI the kits must be present: a missing kit fails there instead of skipping."""
    if not kit.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"parity kit missing at {kit}; CI must run these tests")
        pytest.skip(f"parity kit not found at {kit} (set HEADCAST_SHARED)")


@pytest.fixture(autouse=True)
def _detach_qt_loop():
    """App tests drive Qt with pytest-qt, so the window's asyncio tasks run on a qasync loop that
    `app.tasks.qt_loop()` attached to Qt's loop; after each test (widgets closed first: this fixture is set up
    before qtbot, so it is torn down after it) its leftover tasks are cancelled and it is closed."""
    yield
    tasks = sys.modules.get("app.tasks")
    if tasks is not None:
        tasks.release_qt_loop()


@pytest.fixture(scope="session")
def parity_kit():
    """The LivePortrait kit's make_weights module."""
    _require_kit(PARITY_KIT)
    return _import_file("lp_make_weights", PARITY_KIT / "make_weights.py")


@pytest.fixture(scope="session")
def parity_vectors():
    _require_kit(PARITY_KIT)
    return np.load(PARITY_KIT / "vectors.npz")


@pytest.fixture(scope="session")
def liveportrait_root(parity_kit, tmp_path_factory):
    """The kit's stand-in checkpoints written in the official layout (~521 MB, ~4 s), once per session."""
    root = tmp_path_factory.mktemp("pretrained_weights")
    manifest = parity_kit.load_manifest()
    for module in manifest:
        parity_kit.write_checkpoint(manifest, module, root)
    return root


@pytest.fixture(scope="session")
def joyvasa_kit():
    _require_kit(JOYVASA_KIT)
    return _import_file("jv_make_checkpoint", JOYVASA_KIT / "make_checkpoint.py")


@pytest.fixture(scope="session")
def joyvasa_vectors():
    _require_kit(JOYVASA_KIT)
    return np.load(JOYVASA_KIT / "vectors.npz")


@pytest.fixture(scope="session")
def joyvasa_root(joyvasa_kit, tmp_path_factory):
    """The JoyVASA stand-in checkpoint + template in the official layout (~414 MB), once per session."""
    root = tmp_path_factory.mktemp("joyvasa_weights")
    joyvasa_kit.write_all(joyvasa_kit.load_manifest(), root)
    return root


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photograph (RGB uint8, 512x512) that ships inside scikit-image."""
    from skimage import data

    return data.astronaut()


SPEECH_TEXT = (
    "Hello, this is Headcast. One portrait and a live microphone make a talking head "
    "for your video calls, in real time."
)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A real speech recording made with espeak-ng (22.05 kHz mono WAV, about 6 s)."""
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make system-deps` (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), SPEECH_TEXT], check=True)
    return path


@pytest.fixture(scope="session")
def speech_16k(speech_wav) -> np.ndarray:
    """The espeak-ng recording as float32 mono 16 kHz samples, through the product's own loader."""
    from core.audio.io import load_audio

    return load_audio(speech_wav, sr=16_000)
