"""The window's centre: developer banner, messages, the live preview, Start / Mute, which renderer runs and the
lite atlas progress. It presents what the bridge reports; the window decides (the status line's wording is in
app/status_line.py). Testable alone: build it, `show_renderer(reason)`, `show_atlas(done, total)`."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from .widgets import MessagePanel, PreviewWidget

MESSAGE_STYLE = (
    "QFrame#messageRow { background: #1c2d41; border: 1px solid #1f6feb; border-radius: 6px; }"
    "QFrame#messageRow[warning=\"true\"] { background: #3b2300; border-color: #d29922; }"
    "QFrame#messageRow[warning=\"true\"] QLabel { color: #f0d9a8; }")


class PreviewPanel(QWidget):
    def __init__(self, synthetic: str | None, start_icon, mute_icon, parent=None) -> None:
        super().__init__(parent)
        self.synthetic_label = QLabel(
            f"Developer mode: running with synthetic '{synthetic}' stand-in weights; the avatar is "
            "noise, not a face model." if synthetic else "")
        self.synthetic_label.setObjectName("syntheticBanner")
        self.synthetic_label.setWordWrap(True)
        self.synthetic_label.setVisible(bool(synthetic))
        self.message_panel = MessagePanel()
        self.message_panel.setStyleSheet(MESSAGE_STYLE)
        self.preview = PreviewWidget()
        self.start_button = QPushButton(start_icon, "Start")
        self.start_button.setObjectName("startButton")
        self.start_button.setCheckable(False)
        self.mute_button = QPushButton(mute_icon, "Mute avatar")
        self.mute_button.setCheckable(True)
        # which renderer runs and the atlas progress sit under the preview, not at the foot of the settings: there
        # they scrolled out of sight on a 720 px screen while Start waited minutes for the atlas
        self.renderer_label = QLabel("")
        self.renderer_label.setWordWrap(True)
        self.renderer_label.setAccessibleName("Renderer in use")
        self.renderer_label.setVisible(False)  # until a run says which renderer it uses
        self.atlas_bar = QProgressBar()
        self.atlas_bar.setFormat("Lite atlas: %v/%m frames")
        self.atlas_bar.setVisible(False)
        c = self.layout_ = QVBoxLayout(self)
        c.addWidget(self.synthetic_label)
        c.addWidget(self.message_panel)
        c.addWidget(self.preview, 1)
        c.addWidget(self.renderer_label)
        c.addWidget(self.atlas_bar)
        row = QHBoxLayout()
        row.addWidget(self.start_button, 1)
        row.addWidget(self.mute_button)
        c.addLayout(row)

    def show_renderer(self, reason: str) -> None:
        """Which renderer runs and why (e.g. 'lite mode: the full renderer measured 0.13 fps ...')."""
        self.renderer_label.setText(reason[:1].upper() + reason[1:])  # a sentence, like the atlas lines below
        self.renderer_label.setVisible(bool(reason))
        self.atlas_bar.setVisible(False)

    def show_atlas(self, done: int, total: int) -> None:
        """A lite-mode atlas is being built with the full renderer (once per portrait): show how far."""
        self.atlas_bar.setRange(0, total)
        self.atlas_bar.setValue(done)
        self.atlas_bar.setVisible(done < total)
        self.renderer_label.setVisible(True)
        if done < total:
            self.renderer_label.setText(f"Lite mode: rendering this portrait's atlas ({done}/{total} frames), "
                                        "once; it is reused from then on.")
        else:
            self.renderer_label.setText(f"Lite mode: this portrait's atlas is ready ({total} frames).")
