"""The window's "Portraits" group: the library list, add/remove, the detected face crop and, for photos with
several faces, the face picker. It shows a library entry; the window owns the library and what a choice does.
Testable alone: build it and `show_portrait(entry)`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from core.face import FACE_ORDER

from .widgets import PortraitList


class LibraryPanel(QGroupBox):
    def __init__(self, add_icon, remove_icon, parent=None) -> None:
        super().__init__("Portraits", parent)
        self.portrait_list = PortraitList()
        self.crop_label = QLabel("No portrait")
        self.crop_label.setObjectName("cropLabel")
        self.crop_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.crop_label.setFixedSize(192, 192)
        self.crop_label.setAccessibleName("Detected face crop")
        self.add_button = QPushButton(add_icon, "Add…")
        self.remove_button = QPushButton(remove_icon, "Remove")
        self.face_combo = QComboBox()  # the face picker: shown only for photos with several faces
        self.face_combo.setAccessibleName("Which face to animate")
        self.face_combo.setToolTip(f"This photo has several faces, numbered {FACE_ORDER}")
        self.face_combo.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Drop photos or folders here"))
        layout.addWidget(self.portrait_list, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        layout.addWidget(QLabel("Detected face"))
        layout.addWidget(self.crop_label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.face_combo)

    def show_portrait(self, p) -> None:
        """An `app.library` entry (crop file, faces, face) or None: the crop, and the picker when it has several."""
        if p is None:
            self.crop_label.setPixmap(QPixmap())
            self.crop_label.setText("No portrait")
            return
        self.crop_label.setPixmap(QPixmap(p.crop).scaled(
            self.crop_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))
        self.face_combo.clear()
        for k in range(p.faces):
            self.face_combo.addItem(f"Face {k + 1} of {p.faces}" + (" (largest)" if k == 0 else ""))
        self.face_combo.setCurrentIndex(p.face)
        self.face_combo.setVisible(p.faces > 1)
