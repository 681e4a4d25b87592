"""First run: fetch or import the model weights through `core.weights`, with progress and a real cancel.

Why a worker thread plus an Event: downloads take minutes, the window must stay responsive, and cancel has
to stop the transfer between chunks. The registry itself writes into a temporary folder and renames it into
place only when complete, so a cancelled or failed run leaves nothing half-installed.
"""

from __future__ import annotations

import threading
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


def weights_registry():
    from core.weights import WeightsRegistry

    return WeightsRegistry()


def missing_weights(registry) -> list[str]:
    """Names of required files that are not installed (empty: ready)."""
    return [str(m) for m in registry.missing()]


class WeightsDialog(QDialog):
    """Download (with progress) or import the weights; `result()` is Accepted only when all are present."""

    progress = Signal(int, int, str)  # done bytes, total bytes, current file
    finished_ok = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, registry=None):
        super().__init__(parent)
        self.setWindowTitle("Headcast needs its model weights")
        self.setModal(True)
        self.registry = registry or weights_registry()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        missing = missing_weights(self.registry)
        self.info = QLabel(
            "The face and motion models are not installed yet (about 1 GB, once).\n\nMissing:\n  "
            + "\n  ".join(missing[:8]) + ("\n  …" if len(missing) > 8 else ""))
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
            except Exception as exc:  # reported in the dialog, never raised into Qt
                self.failed.emit("Cancelled; nothing was installed." if self._cancel.is_set()
                                 else f"{type(exc).__name__}: {exc}")
                return
            if self._cancel.is_set():
                self.failed.emit("Cancelled; nothing was installed.")
            else:
                self.finished_ok.emit()

        self._thread = threading.Thread(target=body, name="headcast-weights", daemon=True)
        self._thread.start()

    def start_download(self) -> None:
        self.status.setText("Downloading…")

        def job():
            self.registry.download(progress=self._report, cancel=self._cancel)

        self._run(job)

    def _report(self, done: int, total: int, name: str = "") -> None:
        self.progress.emit(int(done), int(total), str(name))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with the weights")
        if folder:
            self.import_folder(Path(folder))

    def import_folder(self, folder: Path) -> None:
        self.status.setText(f"Importing {folder}…")
        self._run(lambda: self.registry.import_folder(folder))

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def _on_progress(self, done: int, total: int, name: str) -> None:
        self.bar.setValue(int(1000 * done / total) if total > 0 else 0)
        mb = 1024 * 1024
        self.status.setText(f"{name}  {done / mb:.0f} / {total / mb:.0f} MB")

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
