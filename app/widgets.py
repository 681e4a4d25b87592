"""Small custom widgets: the level meter, the preview, and the portrait list that accepts drops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .library import Portrait


def dropped_paths(event) -> list[Path]:
    """Local files and folders carried by a drag (URLs that are not local files are ignored)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]


class LevelMeter(QWidget):
    """A horizontal bar from -60 dBFS to 0 dBFS with a falling peak mark.

    It repaints 20 times a second for the whole session, so painting allocates nothing: the colours are built
    once (class attributes) and the bar and peak rectangles are reused (`setRect`)."""

    FLOOR = -60.0
    BACKGROUND = QColor("#20242b")
    QUIET, LOUD, CLIPPING = QColor("#3fb950"), QColor("#d29922"), QColor("#f85149")
    PEAK = QColor("#e6edf3")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.level = -120.0
        self.peak = -120.0
        self._bar = QRectF()
        self._peak_mark = QRectF()
        self.setMinimumSize(120, 12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Microphone level")

    def sizeHint(self) -> QSize:
        return QSize(200, 14)

    def set_level(self, level_db: float, peak_db: float) -> None:
        if level_db != self.level or peak_db != self.peak:
            self.level, self.peak = level_db, peak_db
            self.update()

    def fraction(self, db: float) -> float:
        return min(1.0, max(0.0, (db - self.FLOOR) / -self.FLOOR))

    def bar_color(self) -> QColor:
        return self.QUIET if self.level < -12 else self.LOUD if self.level < -3 else self.CLIPPING

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), self.BACKGROUND)
        self._bar.setRect(0.0, 0.0, w * self.fraction(self.level), h)
        p.fillRect(self._bar, self.bar_color())
        if self.peak > self.FLOOR:
            x = w * self.fraction(self.peak)
            self._peak_mark.setRect(max(0.0, x - 2), 0.0, 2.0, h)
            p.fillRect(self._peak_mark, self.PEAK)
        p.end()


class PreviewWidget(QWidget):
    """Shows the latest outgoing frame, letterboxed. The QImage wraps the frame's memory (no copy); the
    frame array is kept referenced for as long as the image is shown."""

    BACKGROUND = QColor("#0d1117")
    TEXT = QColor("#8b949e")
    TEXT_FLAGS = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._target = QRectF()  # where the frame is drawn, reused for every frame (paintEvent allocates nothing)
        self._frame: np.ndarray | None = None
        self._image: QImage | None = None
        self._placeholder = "No preview"
        self.frames_shown = 0
        self.setMinimumSize(256, 256)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Preview")

    def sizeHint(self) -> QSize:
        return QSize(512, 512)

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        if self._image is None:
            self.update()

    def show_frame(self, frame: np.ndarray) -> None:
        """`frame`: (H, W, 3) uint8 RGB, C-contiguous; must stay unmodified until the next call."""
        h, w = frame.shape[:2]
        self._frame = frame
        self._image = QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_RGB888)
        self.frames_shown += 1
        self.update()

    def clear(self) -> None:
        self._frame = None
        self._image = None
        self.update()

    def current_image(self) -> QImage | None:
        return self._image

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.BACKGROUND)
        if self._image is None:
            p.setPen(self.TEXT)
            p.drawText(self.rect().adjusted(12, 12, -12, -12), self.TEXT_FLAGS, self._placeholder)
        else:
            iw, ih = self._image.width(), self._image.height()
            s = min(self.width() / iw, self.height() / ih)
            w, h = iw * s, ih * s
            self._target.setRect((self.width() - w) / 2, (self.height() - h) / 2, w, h)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self._target, self._image)
        p.end()


class PortraitList(QListWidget):
    """Thumbnails of the library; accepts dropped files and folders and reports them via `files_dropped`."""

    files_dropped = Signal(list)  # list[Path]

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(96, 96))
        self.setGridSize(QSize(116, 132))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setWordWrap(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)  # drops land on the viewport; the view alone is not enough
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName("Portrait library")
        self.setToolTip("Drop portrait photos or folders here (PNG, JPEG, WebP)")

    def set_portraits(self, portraits: list[Portrait]) -> None:
        current = self.currentRow()
        self.clear()
        for p in portraits:
            item = QListWidgetItem(QIcon(QPixmap(p.thumb)), p.name)
            item.setToolTip(p.path)
            self.addItem(item)
        if 0 <= current < self.count():
            self.setCurrentRow(current)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            event.ignore()


class WheelGuard(QObject):
    """Wheel events change a protected control (drop-down, number box, slider) only while it has the keyboard
    focus, i.e. after the user clicked or tabbed to it. Otherwise the wheel scrolls the scroll area around the
    control, as the user meant; the event is handed to it here rather than left to Qt's propagation to parents,
    which skips events that did not come from the window system."""

    def protect(self, control: QWidget) -> None:
        control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: a wheel must not focus it either
        control.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = watched.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is None:
            event.ignore()  # nothing to scroll: the control stays as it is
        else:
            QApplication.sendEvent(area.viewport(), event)
            event.accept()  # handled: Qt must not also pass it up the parents (that would scroll twice)
        return True


class VerticalScroll(QScrollArea):
    """Scrolls its widget vertically only and asks for the widget's full width, so a column of forms keeps its
    labels and fields readable on a short screen (it scrolls) instead of being cut at the right edge."""

    def __init__(self, widget: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the controls inside (scrolled into view), not here

    def minimumSizeHint(self) -> QSize:
        if self.widget() is None:  # being torn down
            return super().minimumSizeHint()
        extra = self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(self.widget().minimumSizeHint().width() + extra, 80)


class MessagePanel(QWidget):
    """Every error and notice of the session in one visible list, newest first; each row has its own ×, and
    "Dismiss all" clears the list. Hidden while empty.

    Why a list: with a single banner, a second message hid the first (a corrupt-settings notice vanished behind
    "N earlier: Help > Messages"). A message already on the list is not added twice (it moves to the top).
    """

    changed = Signal()
    MAX_HEIGHT = 220  # px of messages shown before the list scrolls (about two long messages)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messagePanel")
        self.setAccessibleName("Messages")
        self._rows: list[tuple[str, QWidget]] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        header = QHBoxLayout()
        self.title = QLabel("")
        self.clear_button = QToolButton(text="Dismiss all")
        self.clear_button.clicked.connect(self.clear)
        header.addWidget(self.title, 1)
        header.addWidget(self.clear_button)
        self._layout.addLayout(header)
        # the rows scroll past MAX_HEIGHT: a long list (or a short window) must not squeeze each row until its
        # wrapped text is cut off, nor push the preview out of the window
        self._rows_box = QWidget()
        self._rows_layout = QVBoxLayout(self._rows_box)
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.setSpacing(2)
        self._rows_layout.addStretch(1)
        self.scroll = _FitScroll(self._rows_box, self.MAX_HEIGHT)
        self._layout.addWidget(self.scroll)
        self.hide()

    def texts(self) -> list[str]:
        """The messages on the list, newest first."""
        return [text for text, _ in self._rows]

    def add(self, text: str, warning: bool = False) -> None:
        if self.texts() and self.texts()[0] == text:
            return
        self.dismiss(text)
        row = QFrame(self)
        row.setObjectName("messageRow")
        row.setProperty("warning", warning)
        lay = QHBoxLayout(row)
        lay.setContentsMargins(6, 2, 2, 2)
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="×")
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(lambda: self.dismiss(text))
        lay.addWidget(label, 1)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._rows.insert(0, (text, row))
        self._rows_layout.insertWidget(0, row)
        row.show()  # at once, not on the layout's queued show (a test or a screenshot may look right away)
        self._update()

    def dismiss(self, text: str) -> None:
        for i, (t, row) in enumerate(self._rows):
            if t == text:
                del self._rows[i]
                row.deleteLater()
                row.hide()
                break
        self._update()

    def clear(self) -> None:
        for _, row in self._rows:
            row.deleteLater()
            row.hide()
        self._rows = []
        self._update()

    def _update(self) -> None:
        n = len(self._rows)
        self.title.setText(f"{n} message{'s' if n != 1 else ''}")
        self.setVisible(n > 0)
        self.scroll.updateGeometry()
        self.changed.emit()


class _FitScroll(VerticalScroll):
    """As tall as its content at the current width, up to `cap` pixels; then it scrolls."""

    def __init__(self, widget: QWidget, cap: int):
        super().__init__(widget)
        self.cap = cap
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    def sizeHint(self) -> QSize:
        if self.widget() is None or self.widget().layout() is None:  # being torn down
            return super().sizeHint()
        lay = self.widget().layout()
        width = max(self.viewport().width(), 100)
        h = lay.totalHeightForWidth(width) if lay.hasHeightForWidth() else lay.totalSizeHint().height()
        return QSize(super().sizeHint().width(), min(h + 2 * self.frameWidth(), self.cap))

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), min(60, self.sizeHint().height()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():  # wrapped text changes height with the width
            self.updateGeometry()
