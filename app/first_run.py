"""First run: fetch or import the model weights through `core.weights`, with progress and a real cancel.

Why the app streams the files itself: the registry's `download` has neither a progress hook nor a way to
stop. Here each file is streamed into a private staging folder in chunks (progress per chunk, cancel checked
between chunks) and only a complete set is handed to `WeightsRegistry.import_dir`, which verifies checksums
and moves every file into place atomically. Cancel or failure deletes the staging folder: nothing
half-installed is ever left in the weights folder.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

WANTED = ("liveportrait", "face")  # the renderer (required) and the better face detector (small, optional)
CHUNK = 1 << 20


class Cancelled(Exception):
    """The user pressed Cancel; nothing was installed."""


def weights_registry():
    from core.weights import WeightsRegistry

    return WeightsRegistry()


def wanted_files(registry, models=WANTED) -> list:
    """`WeightFile`s of `models` that are not installed yet."""
    from core.weights import MODELS

    return [f for m in models for f in MODELS[m].files if not (registry.root / f.local).is_file()]


def missing_weights(registry) -> list[str]:
    """Files of the required models that are missing (empty: the app can run with real weights)."""
    from core.weights import REQUIRED

    return [f.local for f in wanted_files(registry, REQUIRED)]


def hub_url(f) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(f.repo, f.filename)


def download_to_staging(files, staging: Path, progress: Callable[[int, int, str], None],
                        cancel: threading.Event, url_for: Callable = hub_url) -> None:
    """Stream `files` into `staging/<local>`; raises Cancelled or the transfer error."""
    total = sum(f.size or 0 for f in files)
    done = 0
    for f in files:
        target = staging / f.local
        target.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url_for(f), headers={"User-Agent": "headcast"})
        with urllib.request.urlopen(request, timeout=30) as response, open(target, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0)
            if not f.size:
                total += size
            while True:
                if cancel.is_set():
                    raise Cancelled()
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                progress(done, max(total, done), f.local)


def install_weights(registry, files, progress, cancel: threading.Event, url_for: Callable = hub_url) -> list[str]:
    """Download into staging next to the weights folder (same disk: the final moves are renames), then
    install through the registry. The staging folder is always removed."""
    registry.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=registry.root))
    try:
        download_to_staging(files, staging, progress, cancel, url_for)
        if cancel.is_set():
            raise Cancelled()
        return registry.import_dir(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class WeightsDialog(QDialog):
    """Download (with progress) or import the weights; accepted only when the required files are present."""

    progress = Signal(int, int, str)  # done bytes, total bytes, current file
    finished_ok = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, registry=None, url_for: Callable = hub_url):
        super().__init__(parent)
        self.setWindowTitle("Headcast needs its model weights")
        self.registry = registry or weights_registry()
        self.url_for = url_for
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        missing = missing_weights(self.registry)
        self.info = QLabel(
            "The LivePortrait models are not installed yet (about 500 MB, once). They will be stored in\n"
            f"{self.registry.root}\n\nMissing:\n  " + "\n  ".join(missing[:8])
            + ("\n  …" if len(missing) > 8 else "")
            + "\n\nDownload them from Hugging Face, or import a folder that already has them.")
        self.info.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.download_button = QPushButton("Download")
        self.import_button = QPushButton("Import folder…")
        self.cancel_button = QPushButton("Cancel")
        lay = QVBoxLayout(self)
        lay.addWidget(self.info)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.download_button)
        row.addWidget(self.import_button)
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self._choose_folder)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self.finished_ok.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, job) -> None:
        self._cancel.clear()
        self.download_button.setEnabled(False)
        self.import_button.setEnabled(False)

        def body():
            try:
                job()
            except Cancelled:
                self.failed.emit("Cancelled; nothing was installed.")
            except Exception as exc:  # reported in the dialog, never raised into Qt
                self.failed.emit(f"{type(exc).__name__}: {exc}")
            else:
                self.finished_ok.emit()

        self._thread = threading.Thread(target=body, name="headcast-weights", daemon=True)
        self._thread.start()

    def start_download(self) -> None:
        files = wanted_files(self.registry)
        self.status.setText(f"Downloading {len(files)} file(s)…")
        self._run(lambda: install_weights(self.registry, files, self._report, self._cancel, self.url_for))

    def _report(self, done: int, total: int, name: str) -> None:
        self.progress.emit(done, total, name)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with the weights")
        if folder:
            self.import_folder(Path(folder))

    def import_folder(self, folder: Path) -> None:
        self.status.setText(f"Importing {folder}…")
        self._run(lambda: self.registry.import_dir(folder))

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def reject(self) -> None:
        """Closing the dialog mid-transfer cancels it first (the worker stops at the next chunk)."""
        if self.busy:
            self._cancel.set()
            self._thread.join(timeout=10)
        super().reject()

    def _on_progress(self, done: int, total: int, name: str) -> None:
        self.bar.setValue(int(1000 * done / total) if total > 0 else 0)
        mb = 1024 * 1024
        self.status.setText(f"{name}  {done / mb:.1f} / {total / mb:.1f} MB")

    def _on_done(self) -> None:
        missing = missing_weights(self.registry)
        if missing:
            self._on_failed("Still missing: " + ", ".join(missing))
            return
        self.bar.setValue(1000)
        self.status.setText("All weights installed.")
        self.accept()

    def _on_failed(self, text: str) -> None:
        self.status.setText(text)
        self.download_button.setEnabled(True)
        self.import_button.setEnabled(True)
