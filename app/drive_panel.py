"""The window's "Face driving" group (issue 25): Drive with (voice / face / face + voice), the camera list with its
rescan button, a note (no camera found, a change that applies at the next Start) and the small camera preview.
It shows choices and states; app/drive_controls.py decides what they do. Testable alone: build it, `fill` it
with cameras, `set_mode`, read `mode()` / `camera()`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton

from .camera_preview import CameraPreview
from .drive import DRIVE_MODES, MODE_LABELS, MODE_TIPS, CameraInfo, camera_label


class DrivePanel(QGroupBox):
    def __init__(self, refresh_icon, parent=None) -> None:
        super().__init__("Face driving", parent)
        self.mode_combo = QComboBox()
        self.mode_combo.setAccessibleName("Drive with")
        for i, mode in enumerate(DRIVE_MODES):
            self.mode_combo.addItem(MODE_LABELS[mode], mode)
            self.mode_combo.setItemData(i, MODE_TIPS[mode], Qt.ItemDataRole.ToolTipRole)
        self.camera_combo = QComboBox()
        self.camera_combo.setAccessibleName("Driving camera")
        self.camera_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.camera_combo.setMinimumContentsLength(14)
        self.rescan_button = QPushButton(refresh_icon, "")
        self.rescan_button.setToolTip("Look for cameras again")
        self.rescan_button.setAccessibleName("Rescan cameras")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        self.preview = CameraPreview()
        self.preview.setToolTip("What face driving sees: your face through the crop the avatar follows")
        f = QFormLayout(self)
        f.addRow("Drive with", self.mode_combo)
        row = QHBoxLayout()
        row.addWidget(self.camera_combo, 1)
        row.addWidget(self.rescan_button)
        self.camera_label = QLabel("Camera")
        f.addRow(self.camera_label, row)
        f.addRow(self.note)
        f.addRow(self.preview)

    def mode(self) -> str:
        return self.mode_combo.currentData()

    def camera(self) -> str | None:
        return self.camera_combo.currentData()

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(mode)))

    def fill(self, cameras: list[CameraInfo], wanted: str | None, scanned: bool = True) -> None:
        """List `cameras`; select `wanted`, kept on the list as "not found" when a scan did not find it (an
        unplugged camera stays the choice until the user picks another). `scanned=False`: no scan answered yet."""
        combo = self.camera_combo
        combo.blockSignals(True)
        combo.clear()
        for cam in cameras:
            combo.addItem(cam.label, cam.spec)
        if wanted and combo.findData(wanted) < 0:
            combo.addItem(camera_label(wanted) + (" (not found)" if scanned else ""), wanted)
        combo.setCurrentIndex(max(0, combo.findData(wanted)) if wanted else 0)
        combo.blockSignals(False)

    def show_face_controls(self, on: bool) -> None:
        """The camera list and preview only matter while face driving is chosen."""
        for w in (self.camera_label, self.camera_combo, self.rescan_button, self.preview):
            w.setVisible(on)

    def say(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
