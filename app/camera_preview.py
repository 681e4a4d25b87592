"""The small picture of what face driving sees: the newest driving crop (the face through the run's crop window,
what the motion extractor reads), dimmed with "No face in view" when the camera shows none.

It repaints up to the preview's rate for the whole call, so nothing is allocated per update or per paint: the
pixels live in one buffer made once (the QImage wraps it), an update copies into it, and the rectangles, colours
and texts are built once (class attributes, or reused with `setRect`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.face import CROP_SIZE

PREVIEW_SIDE = 160  # px on screen: small, beside the settings


class CameraPreview(QWidget):
    BACKGROUND = QColor("#0d1117")
    DIM = QColor(13, 17, 23, 170)  # over the last picture while no face is in view
    TEXT = QColor("#c9d1d9")
    TEXT_FLAGS = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
    NO_FACE = "No face in view: the avatar follows your voice"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixels = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
        self._image = QImage(self._pixels.data, CROP_SIZE, CROP_SIZE, 3 * CROP_SIZE, QImage.Format.Format_RGB888)
        self._target = QRectF()
        self._text_box = QRect()
        self._whole = QRect()
        self._placeholder = ""
        self.has_picture = False
        self.face_in_view = False
        self.updates = 0  # pictures shown (tests)
        self.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Camera preview")
        self._place()

    def _place(self) -> None:
        """The picture's square and the text's box for the current size (on resize, not per paint)."""
        side = min(self.width(), self.height())
        self._target.setRect((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        self._text_box.setRect(6, 6, self.width() - 12, self.height() - 12)
        self._whole.setRect(0, 0, self.width(), self.height())

    def sizeHint(self) -> QSize:
        return QSize(PREVIEW_SIDE, PREVIEW_SIDE)

    def show_crop(self, crop: np.ndarray) -> None:
        """`crop`: (CROP_SIZE, CROP_SIZE, 3) uint8 RGB; copied, so the caller may reuse it."""
        np.copyto(self._pixels, crop)
        self.has_picture = self.face_in_view = True
        self.updates += 1
        self.update()

    def show_no_face(self) -> None:
        if self.face_in_view or not self.has_picture:
            self.face_in_view = False
            self.update()

    def set_placeholder(self, text: str) -> None:
        """What shows before the first picture (and after `clear`)."""
        self._placeholder = text
        self.update()

    def clear(self) -> None:
        self.has_picture = self.face_in_view = False
        self.update()

    def current_image(self) -> QImage:
        return self._image

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self._whole, self.BACKGROUND)
        if self.has_picture:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self._target, self._image)
        if not self.face_in_view:
            if self.has_picture:
                p.fillRect(self._target, self.DIM)
            p.setPen(self.TEXT)
            p.drawText(self._text_box, self.TEXT_FLAGS, self.NO_FACE if self.has_picture else self._placeholder)
        p.end()
