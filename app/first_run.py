"""First run: fetch or import the model weights through `core.weights`, with progress and a real cancel.

The transfer itself is `WeightsRegistry.download` (the same code as `python -m core weights download`): files
are streamed into a private staging folder with a progress callback and a cancel flag checked between chunks,
then installed through the checksum check; cancel or failure deletes the staging folder, so nothing
half-installed is ever left. This module is only the dialog around it.
"""

from __future__ import annotations

import threading
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


def weights_registry():
    from core.weights import WeightsRegistry

    return WeightsRegistry()


def wanted_files(registry, models=WANTED) -> list:
    """`WeightFile`s of `models` that are missing or visibly damaged (a download fetches them)."""
    return registry.needed(models)


def missing_weights(registry) -> list[str]:
    """Files of the required models that are missing or damaged (empty: the app can run with real weights)."""
    from core.weights import REQUIRED

    return [f.local for f in registry.needed(REQUIRED)]


def describe_failure(exc: BaseException) -> str:
    """A plain sentence for the dialog: our own errors already name the problem and the fix."""
    from core.weights import DownloadCancelled, MissingWeightsError, WeightsChecksumError, WeightsDownloadError

    if isinstance(exc, DownloadCancelled):
        return "Cancelled; nothing was installed."
    if isinstance(exc, (WeightsDownloadError, WeightsChecksumError, MissingWeightsError, FileNotFoundError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"Could not write the weights: {exc.strerror or exc}. Check the free disk space and try again."
    return f"Failed: {exc}"


class WeightsDialog(QDialog):
    """Download (with progress) or import the weights; accepted only when the required files are present."""

    progress = Signal(int, int, str)  # done bytes, total bytes, current file
    finished_ok = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, registry=None, url_for: Callable | None = None):
        super().__init__(parent)
        self.setWindowTitle("Headcast needs its model weights")
        self.registry = registry or weights_registry()
        from core.weights import hub_url

        self.url_for = url_for or hub_url
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._job_running = False
        problems = self.registry.problems()
        listing = ("Missing or damaged:\n  " + "\n  ".join(problems[:8]) + ("\n  …" if len(problems) > 8 else "")
                   if problems else "All required model files are installed and look complete.")
        self.info = QLabel(
            "Headcast's LivePortrait models (about 500 MB, downloaded once) are stored in\n"
            f"{self.registry.root}\n\n{listing}\n\n"
            "Download them from Hugging Face, or import a folder that already has them.")
        self.info.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.download_button = QPushButton("Download")
        self.import_button = QPushButton("Import folder…")
        self.cancel_button = QPushButton("Cancel")
        self.info.setMinimumWidth(560)  # the file list on one line each, not wrapped mid-name
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

    def showEvent(self, event) -> None:
        """Size to the wrapped text in the style it is shown with: a parent's style sheet (the main window's larger
        font) applies only now, and the size computed before it cut off the text's first line."""
        super().showEvent(event)
        self.adjustSize()

    @property
    def busy(self) -> bool:
        """A job is running: true from start until its result reaches the GUI thread (not the thread's own
        lifetime, which ends a moment after it posts the result: the dialog is ready as soon as it says so)."""
        return self._job_running

    def _run(self, job) -> None:
        self._cancel.clear()
        self._job_running = True
        self.download_button.setEnabled(False)
        self.import_button.setEnabled(False)

        def body():
            try:
                job()
            except Exception as exc:  # reported in the dialog, never raised into Qt
                self.failed.emit(describe_failure(exc))
            else:
                self.finished_ok.emit()

        self._thread = threading.Thread(target=body, name="headcast-weights", daemon=True)
        self._thread.start()

    def start_download(self) -> None:
        files = wanted_files(self.registry)
        self.status.setText(f"Downloading {len(files)} file(s)…")
        self._run(lambda: self.registry.download(list(WANTED), self._report, self._cancel, self.url_for))

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
        if self._thread is not None and self._thread.is_alive():
            self._cancel.set()
            self._thread.join(timeout=10)
        super().reject()

    def _on_progress(self, done: int, total: int, name: str) -> None:
        self.bar.setValue(int(1000 * done / total) if total > 0 else 0)
        mb = 1024 * 1024
        self.status.setText(f"{name}  {done / mb:.1f} / {total / mb:.1f} MB")

    def _on_done(self) -> None:
        self._job_running = False
        missing = self.registry.problems()
        if missing:
            self._on_failed("Still missing or damaged: " + "; ".join(missing))
            return
        self.bar.setValue(1000)
        self.status.setText("All weights installed.")
        self.accept()

    def _on_failed(self, text: str) -> None:
        self._job_running = False
        self.status.setText(text)
        self.download_button.setEnabled(True)
        self.import_button.setEnabled(True)
